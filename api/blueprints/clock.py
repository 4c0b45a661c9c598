"""The controllable clock (BPM_CLOCK=manual): demos and acceptance runs move time, due work fires at once."""

from datetime import UTC

from flask.views import MethodView
from marshmallow import ValidationError, fields, validates

from api.auth import require_admin, server
from api.blueprints import Blueprint
from api.schema_base import Schema
from api.schemas import UTCDateTime
from bpm import engine
from bpm.clock import ManualClock
from bpm.domain.errors import NotFound, ValidationFailed
from bpm.services import timers

blp = Blueprint("clock", __name__, url_prefix="/api/v1",
                description="Controllable clock (BPM_CLOCK=manual only)")


class AdvanceSchema(Schema):
    duration = fields.String(required=True, metadata={"example": "P3D", "description": "ISO 8601 duration"})

    @validates("duration")
    def _iso(self, value, **_kwargs):
        if not value.strip().upper().startswith("P"):
            raise ValidationError("an ISO 8601 duration such as PT4H or P3D")


class SetClockSchema(Schema):
    now = fields.AwareDateTime(required=True, default_timezone=UTC,
                               metadata={"example": "2026-01-08T09:00:00Z"})


class ClockSchema(Schema):
    now = UTCDateTime()
    mode = fields.String()
    ran = fields.Dict(keys=fields.String(), values=fields.Integer(),
                      metadata={"description": "what fired after the move: instances_started, timers_fired, "
                                               "escalations"})


def _manual_clock() -> ManualClock:
    context = server()
    if context.settings.clock != "manual" or not isinstance(context.clock, ManualClock):
        raise NotFound("the clock can only be read and moved when the server runs with BPM_CLOCK=manual")
    return context.clock


@blp.route("/clock")
class Clock(MethodView):
    @blp.response(200, ClockSchema)
    def get(self):
        """The server's current time (manual clock only; 404 otherwise)."""
        require_admin()
        return {"now": _manual_clock().now(), "mode": "manual"}

    @blp.arguments(SetClockSchema)
    @blp.response(200, ClockSchema)
    def put(self, body):
        """Set the time (never backwards), then fire whatever is due. Admin only."""
        require_admin()
        clock = _manual_clock()
        if body["now"] < clock.now():
            raise ValidationFailed("the clock cannot go backwards",
                                   {"now": [f"must be >= {clock.now().isoformat()}"]})
        clock.set(body["now"].astimezone(UTC))
        return _ran(clock)


@blp.route("/clock/advance")
class Advance(MethodView):
    @blp.arguments(AdvanceSchema)
    @blp.response(200, ClockSchema)
    def post(self, body):
        """Move the clock forward by an ISO 8601 duration, then fire whatever is due. Admin only."""
        require_admin()
        clock = _manual_clock()
        try:
            delta = engine.parse_duration(body["duration"], clock.now())
        except ValueError as error:
            raise ValidationFailed("invalid duration", {"duration": [str(error)]}) from error
        clock.advance(delta)
        return _ran(clock)


def _ran(clock: ManualClock) -> dict:
    ran = timers.run_due_work(server().uow)
    return {"now": clock.now(), "mode": "manual", "ran": ran}
