"""Render the approved quote as a PDF with weasyprint.

The HTML is built here from escaped values only (customer names, line items and opinions are user input).
Chinese text needs a CJK font: the style sheet asks for Noto Sans CJK (Debian's fonts-noto-cjk) first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import Any

STYLE = """
@page { size: A4; margin: 18mm 16mm; @bottom-right { content: "Page " counter(page) " / " counter(pages);
        font-size: 8pt; color: #666; } }
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Noto Sans", "DejaVu Sans", sans-serif; font-size: 10pt;
       color: #222; }
header { border-bottom: 2px solid #1f4e79; padding-bottom: 6pt; margin-bottom: 12pt; }
header::after { content: ""; display: block; clear: both; }
header .company { font-size: 16pt; font-weight: bold; color: #1f4e79; }
header .meta { float: right; text-align: right; font-size: 9pt; }
h2 { font-size: 11pt; color: #1f4e79; margin: 14pt 0 4pt; }
table { width: 100%; border-collapse: collapse; }
th, td { border-bottom: 1px solid #ccc; padding: 3pt 4pt; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
td.num, th.num { text-align: right; }
.totals td { border: none; }
.totals .grand td { font-weight: bold; border-top: 2px solid #1f4e79; }
"""


@dataclass
class QuoteDocument:
    company: str
    number: str
    customer: str
    customer_region: str | None
    owner: str
    currency: str
    line_items: list[dict[str, Any]]
    amount: Decimal
    discount: Decimal
    valid_until: str | None
    notes: str
    issued_at: str
    approvals: list[dict[str, Any]] = field(default_factory=list)  # {step, actor_name, outcome, opinion, at}


def money(value: Any, currency: str) -> str:
    return f"{currency} {Decimal(str(value)):,.2f}"


def quote_html(doc: QuoteDocument) -> str:
    total = (doc.amount * (Decimal(100) - doc.discount) / Decimal(100)).quantize(Decimal("0.01"))
    return f"""<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><style>{STYLE}</style></head><body>
<header><div class="meta">Quote 报价单 <b>{escape(doc.number)}</b><br>Issued {escape(doc.issued_at)}<br>
Valid until {escape(doc.valid_until or "-")}</div><div class="company">{escape(doc.company)}</div></header>
<h2>Customer 客户</h2><p><b>{escape(doc.customer)}</b> {escape(doc.customer_region or "")}<br>
Account manager: {escape(doc.owner)}</p>
<h2>Line items 明细</h2>{_items_table(doc)}
<table class="totals"><tr><td>Subtotal</td><td class="num">{money(doc.amount, doc.currency)}</td></tr>
<tr><td>Discount</td><td class="num">{escape(str(doc.discount))}%</td></tr>
<tr class="grand"><td>Total 合计</td><td class="num">{money(total, doc.currency)}</td></tr></table>
{f"<h2>Notes 备注</h2><p>{escape(doc.notes)}</p>" if doc.notes else ""}
<h2>Approval trail 审批记录</h2>{_approvals_table(doc)}
</body></html>"""


def _items_table(doc: QuoteDocument) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(item.get('product', '')))}</td><td class='num'>{escape(str(item.get('quantity', '')))}"
        f"</td><td class='num'>{money(item.get('unit_price', 0), doc.currency)}</td><td class='num'>"
        f"{money(Decimal(str(item.get('quantity', 0))) * Decimal(str(item.get('unit_price', 0))), doc.currency)}"
        f"</td></tr>" for item in doc.line_items)
    return ("<table><tr><th>Product</th><th class='num'>Quantity</th><th class='num'>Unit price</th>"
            f"<th class='num'>Line total</th></tr>{rows}</table>")


def _approvals_table(doc: QuoteDocument) -> str:
    rows = "".join(
        f"<tr><td>{escape(step_label(a.get('step') or ''))}</td><td>{escape(a.get('actor_name') or '')}</td>"
        f"<td>{escape(a.get('outcome') or '')}</td><td>{escape(a.get('at') or '')}</td>"
        f"<td>{escape(a.get('opinion') or '')}</td></tr>" for a in doc.approvals)
    return ("<table><tr><th>Step</th><th>Approver</th><th>Decision</th><th>Date</th><th>Opinion</th></tr>"
            f"{rows}</table>")


def step_label(step: str) -> str:
    """technical_director -> Technical director."""
    return step.replace("_", " ").capitalize()


def render_quote_pdf(doc: QuoteDocument) -> bytes:
    from weasyprint import HTML  # late: importing weasyprint loads pango, which only this path needs

    return HTML(string=quote_html(doc)).write_pdf()
