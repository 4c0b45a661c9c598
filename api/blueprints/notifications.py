"""In-app notifications of the signed-in user, and the failed-delivery view for admins."""

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import current_actor, require_admin, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from api.schemas import UTCDateTime
from bpm.services import notifications, outbox

blp = Blueprint("notifications", __name__, url_prefix="/api/v1",
                description="In-app notifications and delivery of email, webhook and robot messages")


class InAppNotificationSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    body = fields.String()
    link = fields.String(allow_none=True)
    created_at = UTCDateTime()
    read_at = UTCDateTime(allow_none=True)


class InAppNotificationQuerySchema(Schema):
    unread = fields.Boolean(load_default=False, metadata={"description": "only unread notifications"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    before_id = fields.Integer(load_default=None, metadata={"description": "last id of the previous page"})


class UnreadCountSchema(Schema):
    unread = fields.Integer()


class MarkedReadSchema(Schema):
    marked = fields.Integer()


class OutboxDeliverySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String(metadata={"description": "pending | published | delivered | failed"})
    attempts = fields.Integer()
    created_at = UTCDateTime()
    next_attempt_at = UTCDateTime(allow_none=True)
    published_at = UTCDateTime(allow_none=True)
    delivered_at = UTCDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    dedupe_key = fields.String(allow_none=True)
    payload = fields.Dict()


class OutboxDeliveryQuerySchema(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(outbox.STATUSES))
    kind = fields.String(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    before_id = fields.Integer(load_default=None)


@blp.route("/notifications")
class Notifications(MethodView):
    @blp.arguments(InAppNotificationQuerySchema, location="query")
    @blp.response(200, InAppNotificationSchema(many=True))
    def get(self, query):
        """My notifications, newest first (`unread=true` for the unread ones)."""
        actor = current_actor()
        return notifications.list_notifications(actor.username, uow(), query["unread"], query["limit"],
                                                query["before_id"])


@blp.route("/notifications/unread-count")
class UnreadCount(MethodView):
    @blp.response(200, UnreadCountSchema)
    def get(self):
        """How many of my notifications are unread (the badge)."""
        return {"unread": notifications.unread_count(current_actor().username, uow())}


@blp.route("/notifications/<int:notification_id>/read")
class MarkRead(MethodView):
    @blp.response(200, InAppNotificationSchema)
    def post(self, notification_id):
        """Mark one of my notifications read."""
        return notifications.mark_read(notification_id, current_actor().username, uow())


@blp.route("/notifications/read-all")
class MarkAllRead(MethodView):
    @blp.response(200, MarkedReadSchema)
    def post(self):
        """Mark all my notifications read."""
        return {"marked": notifications.mark_all_read(current_actor().username, uow())}


@blp.route("/deliveries")
class Deliveries(MethodView):
    @blp.arguments(OutboxDeliveryQuerySchema, location="query")
    @blp.response(200, OutboxDeliverySchema(many=True))
    def get(self, query):
        """Outbox messages, newest first; `status=failed` lists what gave up after the last retry (admin)."""
        require_admin()
        return outbox.list_deliveries(uow(), query["status"], query["kind"], query["limit"],
                                      query["before_id"])


@blp.route("/deliveries/<int:delivery_id>")
class DeliveryResource(MethodView):
    @blp.response(200, OutboxDeliverySchema)
    def get(self, delivery_id):
        """One outbox message with its attempts and last error (admin)."""
        require_admin()
        return outbox.get_delivery(delivery_id, uow())


@blp.route("/deliveries/<int:delivery_id>/retry")
class RetryDelivery(MethodView):
    @blp.response(202, OutboxDeliverySchema)
    def post(self, delivery_id):
        """Send a failed message again with a fresh set of attempts (admin)."""
        require_admin()
        return outbox.retry_delivery(delivery_id, uow())
