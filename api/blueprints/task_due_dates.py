"""A task's due date: set or removed by an admin or the assignee's supervisor; escalation steps follow it."""

from flask.views import MethodView
from marshmallow import fields

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from api.schemas import UTCDateTime
from bpm.services import escalation

blp = Blueprint("task_due_dates", __name__, url_prefix="/api/v1/tasks", description="Human tasks")


class DueDateSchema(Schema):
    due_at = UTCDateTime(required=True, allow_none=True,
                         metadata={"description": "the new due date (ISO 8601 with offset); null removes it"})
    comment = fields.String(load_default=None, allow_none=True)


class DeadlineSchema(Schema):
    kind = fields.String(metadata={"description": "remind | overdue | reassign | timeout"})
    due_at = UTCDateTime()
    status = fields.String(metadata={"description": "waiting | done | cancelled"})


class TaskDueDateSchema(Schema):
    id = fields.String()
    due_at = UTCDateTime(allow_none=True)
    deadlines = fields.List(fields.Nested(DeadlineSchema), metadata={"description": "the task's escalation steps"})


@blp.route("/<string:task_id>/due-date")
class DueDate(MethodView):
    @blp.arguments(DueDateSchema)
    @blp.response(200, TaskDueDateSchema)
    def put(self, body, task_id):
        """Set (or remove) an open task's due date; its reminders and escalations are planned again from it
        (admin, or the supervisor of the assignee)."""
        task = escalation.set_due_date(task_id, current_actor(), body["due_at"], body.get("comment"), uow())
        return {"id": task.id, "due_at": task.due_at, "deadlines": escalation.deadlines_of(task.id, uow())}
