"""Incidents: failed background jobs and engine steps, and retrying them once the cause is fixed."""

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import current_actor, server, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from api.schemas import UTCDateTime
from bpm.services import incidents

blp = Blueprint("incidents", __name__, url_prefix="/api/v1", description="Incidents (admins and designers)")


class IncidentSchema(Schema):
    id = fields.Integer()
    status = fields.Method("_status", metadata={"enum": ["open", "resolved"]})
    instance_id = fields.String(allow_none=True)
    process_key = fields.String(allow_none=True)
    element_id = fields.String(allow_none=True)
    element_name = fields.String(allow_none=True)
    job_kind = fields.String(metadata={"description": "timer | escalation | timer_start | delivery | ..."})
    job_id = fields.String()
    message = fields.String()
    retries = fields.Integer()
    next_attempt_at = UTCDateTime(allow_none=True, metadata={"description": "null: manual retry only"})
    created_at = UTCDateTime()
    last_failed_at = UTCDateTime()
    resolved_at = UTCDateTime(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True)

    def _status(self, incident):
        return "resolved" if incident.resolved_at else "open"


class IncidentQuerySchema(Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "resolved", "all"]))
    key = fields.String(metadata={"description": "process key"})
    instance_id = fields.String()
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    after = fields.Integer(metadata={"description": "return incidents with a larger id (pagination)"})


@blp.route("/incidents")
class Incidents(MethodView):
    @blp.arguments(IncidentQuerySchema, location="query")
    @blp.response(200, IncidentSchema(many=True))
    def get(self, query):
        """List incidents (open by default; filter by process key or instance)."""
        status = None if query["status"] == "all" else query["status"]
        filters = incidents.IncidentQuery(status, query.get("key"), query.get("instance_id"), query["limit"],
                                          query.get("after"))
        return incidents.list_incidents(uow(), current_actor(), filters)


@blp.route("/incidents/<int:incident_id>")
class Incident(MethodView):
    @blp.response(200, IncidentSchema)
    def get(self, incident_id):
        """One incident: what failed, where, the error, retries."""
        return incidents.get_incident(uow(), current_actor(), incident_id)


@blp.route("/incidents/<int:incident_id>/retry")
class Retry(MethodView):
    @blp.response(200, IncidentSchema)
    def post(self, incident_id):
        """Run the failed job again now. The incident is resolved when it succeeds; otherwise it shows the new
        error and one more retry."""
        return incidents.retry_incident(server().uow, current_actor(), incident_id)
