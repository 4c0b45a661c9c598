"""The task inbox: list, read, claim, unclaim, complete."""

from flask.views import MethodView

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.schemas import CompleteTaskSchema, TaskSchema, field_names
from api.schemas_approvals import InboxPageSchema, InboxQuerySchema, InboxTaskDetailSchema
from bpm.services import approvals, tasks

blp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="Human tasks")


@blp.route("")
class Inbox(MethodView):
    @blp.arguments(InboxQuerySchema, location="query")
    @blp.response(200, InboxPageSchema)
    def get(self, query):
        """The caller's tasks (mine + my groups by default; see `scope`), filtered, sorted, keyset-paginated."""
        from api.blueprints.approvals import inbox_query

        items, next_cursor = tasks.list_tasks(uow(), current_actor(), inbox_query(query))
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/<string:task_id>")
class TaskResource(MethodView):
    @blp.response(200, InboxTaskDetailSchema)
    def get(self, task_id):
        """A task with its form, current data, and the operations the caller may perform now (`actions`)."""
        actor = current_actor()
        described = tasks.describe_task(uow(), actor, task_id)
        task = described["task"]
        return {**{c: getattr(task, c) for c in field_names(TaskSchema)}, **_inbox_fields(task),
                "data": described["data"], "form": described["form"],
                "actions": approvals.actions_for(task_id, actor, uow())}


def _inbox_fields(task) -> dict:
    return {"owner": task.owner, "delegation_state": task.delegation_state, "substitute_for": task.substitute_for,
            "last_urged_at": task.last_urged_at}


@blp.route("/<string:task_id>/claim")
class Claim(MethodView):
    @blp.response(200, TaskSchema)
    def post(self, task_id):
        """Take a task you are a candidate for."""
        return tasks.claim_task(task_id, current_actor(), uow())


@blp.route("/<string:task_id>/unclaim")
class Unclaim(MethodView):
    @blp.response(200, TaskSchema)
    def post(self, task_id):
        """Give a claimed task back to its candidates."""
        return tasks.unclaim_task(task_id, current_actor(), uow())


@blp.route("/<string:task_id>/complete")
class Complete(MethodView):
    @blp.arguments(CompleteTaskSchema)
    @blp.response(200, TaskSchema)
    def post(self, body, task_id):
        """Complete a task with variables; the process moves on in the same transaction."""
        command = tasks.CompleteTask(task_id, current_actor(), body.get("variables") or {})
        return tasks.complete_task(command, uow())
