"""The network side of delivery: SMTP email, signed JSON webhooks, DingTalk and WeCom robot messages.

Every send carries the outbox id so receivers can drop repeats (at-least-once delivery): the email
Message-ID is derived from it and webhooks send it as `X-BPM-Delivery`. Webhook bodies are signed
Stripe/GitHub style: `X-BPM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import time
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import requests

TIMEOUT_SECONDS = 10
SIGNATURE_TOLERANCE_SECONDS = 300


class DeliveryRejected(Exception):
    """The receiver answered but refused the message (HTTP error, robot errcode, SMTP refusal)."""


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str):
        self.host, self.port, self.sender = host, port, sender

    def send(self, email: Email, delivery_id: int) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS) as smtp:
            smtp.send_message(build_message(email, self.sender, delivery_id))


def build_message(email: Email, sender: str, delivery_id: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    # The same outbox id always yields the same Message-ID, so a repeated send is recognisably the same mail.
    message["Message-ID"] = f"<bpm-delivery-{delivery_id}@{_domain_of(sender)}>"
    message["X-BPM-Delivery"] = str(delivery_id)
    message.set_content(email.text, charset="utf-8")
    message.add_alternative(email.html, subtype="html", charset="utf-8")
    return message


def _domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip("> ") if "@" in address else "bpm.local"


# --- webhooks -----------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, now: float | None = None,
           tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """What a receiver does: check the HMAC and that the timestamp is recent (no replays of old bodies)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


def post_signed_json(url: str, secret: str, body: dict, delivery_id: int) -> None:
    if not url:
        raise DeliveryRejected("no webhook URL is configured (BPM_WEBHOOK_URL)")
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "X-BPM-Delivery": str(delivery_id),
               "User-Agent": "bpm-server-webhooks"}
    if secret:
        headers["X-BPM-Signature"] = sign(secret, int(time.time()), data)
    _check_http(requests.post(url, data=data, headers=headers, timeout=TIMEOUT_SECONDS))


# --- chat robots --------------------------------------------------------------------------------------------


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int | None = None) -> str:
    """DingTalk's "加签": sign = urlencode(base64(HMAC-SHA256(key=secret, "<timestamp ms>\\n<secret>")))."""
    if not secret:
        return url
    timestamp_ms = timestamp_ms or int(time.time() * 1000)
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    signature = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={signature}"


def dingtalk_body(title: str, markdown: str) -> dict:
    return {"msgtype": "markdown", "markdown": {"title": title, "text": markdown}}


def wecom_body(markdown: str) -> dict:
    return {"msgtype": "markdown", "markdown": {"content": markdown}}


def post_dingtalk(url: str, secret: str, title: str, markdown: str) -> None:
    if not url:
        raise DeliveryRejected("no DingTalk robot webhook is configured (BPM_DINGTALK_WEBHOOK)")
    _post_robot(dingtalk_signed_url(url, secret), dingtalk_body(title, markdown))


def post_wecom(url: str, markdown: str) -> None:
    if not url:
        raise DeliveryRejected("no WeCom robot webhook is configured (BPM_WECOM_WEBHOOK)")
    _post_robot(url, wecom_body(markdown))


def _post_robot(url: str, body: dict) -> None:
    response = requests.post(url, json=body, timeout=TIMEOUT_SECONDS)
    _check_http(response)
    try:
        answer = response.json()
    except ValueError:
        return
    # Both robots answer HTTP 200 with {"errcode": <non-zero>, "errmsg": ...} when they refuse a message.
    if isinstance(answer, dict) and answer.get("errcode", 0) != 0:
        raise DeliveryRejected(f"robot refused the message: {answer.get('errcode')} {answer.get('errmsg')}")


def _check_http(response) -> None:
    if response.status_code >= 300:
        raise DeliveryRejected(f"HTTP {response.status_code} from {response.url}: {response.text[:200]}")
