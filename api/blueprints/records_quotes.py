"""Quotes: the record, submitting it for approval, and the approved quote's PDF."""

from flask import Response
from flask.views import MethodView

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.blueprints.records_customers import page, vars_of
from api.schemas_records import (
    QuoteDetailSchema,
    QuoteInSchema,
    QuotePatchSchema,
    QuoteQuerySchema,
    QuoteSchema,
    SubmittedSchema,
)
from bpm.adapters.orm_records import Quote
from bpm.services import quotes, records

blp = Blueprint("quotes", __name__, url_prefix="/api/v1", description="Quotes and their approval")


@blp.route("/quotes")
class Quotes(MethodView):
    @blp.arguments(QuoteQuerySchema, location="query")
    @blp.response(200, QuoteSchema(many=True))
    def get(self, query):
        """List quotes (filters: customer_id, owner, status)."""
        return records.list_records(uow(), current_actor(), Quote, page(query, "customer_id", "owner", "status"))

    @blp.arguments(QuoteInSchema)
    @blp.response(201, QuoteSchema)
    def post(self, body):
        """Create a draft quote (amount = the line items' total when line items are given)."""
        return quotes.create_quote(body, current_actor(), uow())


@blp.route("/quotes/<int:quote_id>")
class QuoteResource(MethodView):
    @blp.response(200, QuoteDetailSchema)
    def get(self, quote_id):
        """A quote with its customer, approval trail, processes and open tasks."""
        described = quotes.describe_quote(uow(), current_actor(), quote_id)
        quote = described.pop("quote")
        return {**vars_of(quote), **described, "has_pdf": bool(quote.pdf_path)}

    @blp.arguments(QuotePatchSchema)
    @blp.response(200, QuoteSchema)
    def patch(self, body, quote_id):
        """Change a draft quote (409 once it is submitted)."""
        return quotes.update_quote(quote_id, body, current_actor(), uow())


@blp.route("/quotes/<int:quote_id>/submit")
class Submit(MethodView):
    @blp.response(201, SubmittedSchema)
    def post(self, quote_id):
        """Start the quote approval process for a draft quote."""
        quote, instance_id = quotes.submit_quote(quote_id, current_actor(), uow())
        return {"quote": quote, "instance_id": instance_id}


@blp.route("/quotes/<int:quote_id>/pdf")
class QuotePdf(MethodView):
    @blp.response(200, content_type="application/pdf")
    def get(self, quote_id):
        """The approved quote as PDF (404 until the quote is approved)."""
        return pdf_response(quotes.quote_pdf(uow(), current_actor(), quote_id))


@blp.route("/process-instances/<string:instance_id>/documents/quote.pdf")
class InstanceQuotePdf(MethodView):
    @blp.response(200, content_type="application/pdf")
    def get(self, instance_id):
        """The quote PDF produced by a quote approval instance (for whoever may read the instance)."""
        return pdf_response(quotes.instance_quote_pdf(uow(), current_actor(), instance_id))


def pdf_response(path) -> Response:
    """Quote PDFs are small: read them whole (no file handle outlives the request)."""
    return Response(path.read_bytes(), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{path.name}"'})
