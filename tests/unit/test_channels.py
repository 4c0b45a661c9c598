"""The wire formats of delivery: webhook signatures, DingTalk's signed URL, robot bodies, email MIME."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

import pytest
from receivers import WebhookReceiver

from bpm.adapters import channels
from bpm.config import Settings
from bpm.services import notifications, outbox


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


def test_a_signature_verifies_only_for_the_same_secret_body_and_a_recent_time():
    header = channels.sign("s3cret", 1_700_000_000, b'{"a":1}')
    expected = hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert channels.verify("s3cret", header, b'{"a":1}', now=1_700_000_100)
    assert not channels.verify("other", header, b'{"a":1}', now=1_700_000_100)
    assert not channels.verify("s3cret", header, b'{"a":2}', now=1_700_000_100)
    assert not channels.verify("s3cret", header, b'{"a":1}', now=1_700_000_000 + 301)  # a replayed old body
    assert not channels.verify("s3cret", "garbage", b'{"a":1}')


def test_dingtalk_signs_timestamp_newline_secret_in_base64_as_its_documentation_says():
    url = channels.dingtalk_signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SEC1",
                                       timestamp_ms=1_577_262_236_757)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    digest = hmac.new(b"SEC1", b"1577262236757\nSEC1", hashlib.sha256).digest()
    assert query["access_token"] == ["T"] and query["timestamp"] == ["1577262236757"]
    assert query["sign"] == [base64.b64encode(digest).decode()]
    assert channels.dingtalk_signed_url("https://x/robot?t=1", "") == "https://x/robot?t=1"


def test_robot_bodies_follow_the_dingtalk_and_wecom_markdown_formats(receiver):
    channels.post_dingtalk(receiver.url, "", "新任务", "### 新任务\n- 报价 Q-7")
    channels.post_wecom(receiver.url, "### 新任务")
    assert receiver.bodies == [
        {"msgtype": "markdown", "markdown": {"title": "新任务", "text": "### 新任务\n- 报价 Q-7"}},
        {"msgtype": "markdown", "markdown": {"content": "### 新任务"}},
    ]


def test_a_robot_refusal_with_http_200_is_a_failed_delivery(receiver):
    receiver.robot_errcode = 310000
    with pytest.raises(channels.DeliveryRejected, match="310000"):
        channels.post_wecom(receiver.url, "text")


def test_webhook_subscription_messages_use_their_own_url_secret_and_format(receiver):
    receiver.secret = "sub-secret"
    send = notifications.build_channels(Settings(webhook_secret="global"))["webhook"]
    body = {"event": "task.created", "data": {"task_id": "t1", "name": "审批"}}
    send(outbox.Delivery(7, "webhook", {"url": receiver.url, "secret": "sub-secret", "body": body}), None)
    receiver.secret = ""  # robots are not signed with our header
    send(outbox.Delivery(8, "webhook", {"url": receiver.url, "format": "wecom", "body": body}), None)
    assert receiver.bad_signatures == 0
    assert receiver.bodies[0] == {"id": 7, **body}
    assert receiver.bodies[1]["markdown"]["content"] == "### task.created\n- task_id: t1\n- name: 审批"


def test_an_email_has_plain_text_and_html_in_utf8_and_a_message_id_from_the_outbox_id():
    payload = {"to": "li@example.com", "reason": "overdue", "language": "zh",
               "facts": {"task_id": "t-9", "name": "制定方案", "process_key": "complaint_handling",
                         "business_key": "C-1", "due_at": "2026-01-05T13:00:00+00:00"}}
    message = channels.build_message(notifications.render_email(payload, "https://bpm.example.com"),
                                     "bpm@example.com", 42)
    assert message["Subject"] == "已逾期：制定方案"
    assert message["Message-ID"] == "<bpm-delivery-42@example.com>" and message["X-BPM-Delivery"] == "42"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Reference: C-1" in text and "https://bpm.example.com/tasks/t-9" in text
    assert "<h2>已逾期：制定方案</h2>" in html


def test_html_email_escapes_what_came_from_process_data():
    payload = {"to": "x@example.com", "reason": "task_created",
               "facts": {"task_id": "t", "name": "<script>x</script>", "process_key": "p"}}
    html = notifications.render_email(payload, "http://h").html
    assert "<script>" not in html and "&lt;script&gt;" in html
