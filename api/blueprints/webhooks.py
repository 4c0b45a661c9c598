"""Webhook subscriptions (admins and integrators), their delivery log and manual redelivery."""

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from api.schemas import UTCDateTime, field_names
from bpm.services import webhooks

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
                description="Signed event callbacks: HMAC-SHA256 over `<timestamp>.<body>` in X-BPM-Signature")


class WebhookCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    events = fields.List(fields.String(validate=validate.OneOf(webhooks.EVENT_NAMES)), required=True,
                         validate=validate.Length(min=1))
    process_key = fields.String(allow_none=True, validate=validate.Length(max=255))
    secret = fields.String(allow_none=True, validate=validate.Length(min=8, max=200),
                           metadata={"description": "generated when absent; shown only in this response"})
    format = fields.String(load_default="generic", validate=validate.OneOf(webhooks.FORMATS))
    active = fields.Boolean(load_default=True)
    description = fields.String(load_default="", validate=validate.Length(max=500))


class WebhookUpdateSchema(Schema):
    url = fields.String(validate=validate.Length(min=1, max=2000))
    events = fields.List(fields.String(validate=validate.OneOf(webhooks.EVENT_NAMES)), validate=validate.Length(min=1))
    process_key = fields.String(allow_none=True, validate=validate.Length(max=255))
    secret = fields.String(validate=validate.Length(min=8, max=200))
    format = fields.String(validate=validate.OneOf(webhooks.FORMATS))
    active = fields.Boolean()
    description = fields.String(validate=validate.Length(max=500))


class WebhookSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    process_key = fields.String(allow_none=True)
    format = fields.String()
    active = fields.Boolean()
    description = fields.String()
    created_by = fields.String(allow_none=True)
    created_at = UTCDateTime()


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "keep it: it is not shown again"})


class DeliverySchema(Schema):
    id = fields.Integer()
    event = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    outbox_id = fields.String(allow_none=True)
    redelivery_of = fields.Integer(allow_none=True)
    created_at = UTCDateTime()
    delivered_at = UTCDateTime(allow_none=True)
    body = fields.Dict()


@blp.route("")
class Webhooks(MethodView):
    @blp.response(200, WebhookSchema(many=True))
    def get(self):
        """List webhook subscriptions (never their secrets)."""
        return webhooks.list_subscriptions(current_actor(), uow())

    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookCreatedSchema)
    def post(self, body):
        """Subscribe a URL to events, optionally of one process key."""
        row, secret = webhooks.create_subscription(webhooks.WebhookInput(**body), current_actor(), uow())
        return {**{name: getattr(row, name) for name in field_names(WebhookSchema)}, "secret": secret}


@blp.route("/<int:subscription_id>")
class Webhook(MethodView):
    @blp.response(200, WebhookSchema)
    def get(self, subscription_id):
        """One subscription."""
        return webhooks.get_subscription(subscription_id, current_actor(), uow())

    @blp.arguments(WebhookUpdateSchema)
    @blp.response(200, WebhookSchema)
    def patch(self, body, subscription_id):
        """Change URL, events, filter, format, secret or pause it (`active: false`)."""
        return webhooks.update_subscription(subscription_id, body, current_actor(), uow())

    @blp.response(204)
    def delete(self, subscription_id):
        """Remove a subscription and its delivery log."""
        webhooks.delete_subscription(subscription_id, current_actor(), uow())


@blp.route("/<int:subscription_id>/deliveries")
class Deliveries(MethodView):
    @blp.response(200, DeliverySchema(many=True))
    def get(self, subscription_id):
        """The delivery log, newest first: status, attempts and last error from the outbox."""
        return webhooks.list_deliveries(subscription_id, current_actor(), uow())


@blp.route("/<int:subscription_id>/deliveries/<int:delivery_id>/redeliver")
class Redeliver(MethodView):
    @blp.response(202, DeliverySchema)
    def post(self, subscription_id, delivery_id):
        """Send a delivery again (a failed one is retried, a delivered one re-sent as a new delivery)."""
        return webhooks.redeliver(subscription_id, delivery_id, current_actor(), uow())
