"""The task inbox: list, read, claim, unclaim, complete."""

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_actor, uow
from api.schemas import CompleteTaskSchema, TaskDetailSchema, TaskPageSchema, TaskQuerySchema, TaskSchema
from bpm.services import tasks

blp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="Human tasks")


@blp.route("")
class Inbox(MethodView):
    @blp.arguments(TaskQuerySchema, location="query")
    @blp.response(200, TaskPageSchema)
    def get(self, query):
        """The caller's tasks: assigned to them or claimable through their groups; keyset-paginated."""
        actor = current_actor()
        task_query = tasks.TaskQuery(query["scope"], query["status"], query.get("process"),
                                     query.get("business_key"), query.get("due_before"), query["sort"],
                                     query["limit"], query.get("cursor"))
        items, next_cursor = tasks.list_tasks(uow(), actor, task_query)
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/<string:task_id>")
class TaskResource(MethodView):
    @blp.response(200, TaskDetailSchema)
    def get(self, task_id):
        """A task with its form and current data."""
        described = tasks.describe_task(uow(), current_actor(), task_id)
        task = described["task"]
        return {**{c: getattr(task, c) for c in TaskSchema().fields}, "data": described["data"],
                "form": described["form"]}


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
