"""Correlate a message to waiting instances, start processes by message, or buffer it for a while."""

from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from bpm.services import messages

blp = Blueprint("messages", __name__, url_prefix="/api/v1/messages", description="Message correlation")


class MessageSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    business_key = fields.String(allow_none=True, validate=validate.Length(max=255))
    instance_id = fields.String(allow_none=True, validate=validate.Length(max=36))
    correlation = fields.Dict(keys=fields.String(), load_default=dict,
                              metadata={"description": "variable -> value the waiting instance must hold"})
    variables = fields.Dict(keys=fields.String(), load_default=dict)
    ttl = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=messages.MAX_TTL_SECONDS),
                         metadata={"description": "seconds to buffer the message if nobody waits for it"})

    @validates_schema
    def one_way_to_correlate(self, data, **_kwargs):
        if data.get("business_key") and data.get("instance_id"):
            raise ValidationError("give business_key or instance_id, not both", "instance_id")


class MessageResultSchema(Schema):
    status = fields.String(metadata={"description": "correlated | buffered"})
    resumed = fields.List(fields.String(), metadata={"description": "instances the message resumed"})
    started = fields.List(fields.String(), metadata={"description": "instances a message start event started"})
    buffered_id = fields.Integer(allow_none=True)


@blp.route("")
class Messages(MethodView):
    @blp.arguments(MessageSchema)
    @blp.response(200, MessageResultSchema)
    @blp.alt_response(202, schema=MessageResultSchema, description="Nobody waited: buffered for `ttl` seconds")
    @blp.alt_response(404, description="Nobody waits for the message and no `ttl` was given")
    def post(self, body):
        """Deliver a message by business key, instance id or correlation variables (needs the messages scope)."""
        command = messages.CorrelateMessage(body["name"], current_actor(), body.get("business_key"),
                                            body.get("instance_id"), body.get("correlation") or {},
                                            body.get("variables") or {}, body.get("ttl"))
        result = messages.correlate(command, uow())
        return result, 202 if result.status == "buffered" else 200
