"""Start process instances, follow them, read their history, cancel them."""

from flask import request
from flask.views import MethodView

from api.auth import current_actor, require, uow
from api.blueprints import Blueprint
from api.schemas import (
    CancelSchema,
    HistorySchema,
    InstanceDetailSchema,
    InstanceQuerySchema,
    InstanceSchema,
    StartInstanceSchema,
    field_names,
)
from bpm.services import instances, my_requests

blp = Blueprint("process-instances", __name__, url_prefix="/api/v1", description="Process instances")


@blp.route("/process-definitions/<string:key>/instances")
class StartInstance(MethodView):
    @blp.arguments(StartInstanceSchema)
    @blp.response(201, InstanceDetailSchema)
    @blp.alt_response(200, schema=InstanceDetailSchema,
                      description="Same Idempotency-Key and body as an earlier request: that instance")
    @blp.alt_response(409, description="Same Idempotency-Key with a different body")
    @blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"},
                          "required": False}])
    def post(self, body, key):
        """Start the newest version (or `version`) of a process."""
        actor = require("start")
        command = instances.StartInstance(key, actor, body.get("business_key"), body.get("variables") or {},
                                          body.get("version"), request.headers.get("Idempotency-Key"))
        result = instances.start_instance(command, uow())
        detail = _detail(actor, result.instance.id, result.detail)
        return detail, 201 if result.created else 200


def _detail(actor, instance_id, described=None):
    described = described or instances.describe_instance(uow(), actor, instance_id)
    instance = described["instance"]
    return {**{c: getattr(instance, c) for c in field_names(InstanceSchema) if hasattr(instance, c)},
            "version": described["definition"].version, "variables": described["variables"],
            "open_tasks": described["open_tasks"], "path": described["path"],
            "timers": described.get("timers", [])}


@blp.route("/process-instances")
class Instances(MethodView):
    @blp.arguments(InstanceQuerySchema, location="query")
    @blp.response(200, InstanceSchema(many=True))
    def get(self, query):
        """List instances (filters: status, key, business_key, started_by; paginate with `after`).

        `started_by=me` lists the instances the caller started, newest first; anyone may list their own.
        `with_tasks=true` adds each instance's process name, current steps and who holds them."""
        actor = current_actor()
        if query.get("started_by") == "me":
            mine = my_requests.MyInstancesQuery(query.get("status"), query.get("key"), query.get("business_key"),
                                                query["limit"], query.get("after"))
            rows = my_requests.list_my_instances(uow(), actor, mine)
        else:
            filters = instances.InstanceFilter(query.get("status"), query.get("key"), query.get("business_key"),
                                               query.get("started_by"), query["limit"], query.get("after"))
            rows = instances.list_instances(uow(), actor, filters)
        return my_requests.expand(uow(), rows) if query["with_tasks"] else rows


@blp.route("/process-instances/<string:instance_id>")
class Instance(MethodView):
    @blp.response(200, InstanceDetailSchema)
    def get(self, instance_id):
        """Status, variables, open tasks and the path taken so far."""
        return _detail(current_actor(), instance_id)


@blp.route("/process-instances/<string:instance_id>/history")
class History(MethodView):
    @blp.response(200, HistorySchema(many=True))
    def get(self, instance_id):
        """Every step: starts, tasks and their actors, gateway decisions with values, completion."""
        return instances.instance_history(uow(), current_actor(), instance_id)


@blp.route("/process-instances/<string:instance_id>/cancel")
class Cancel(MethodView):
    @blp.arguments(CancelSchema)
    @blp.response(200, InstanceSchema)
    def post(self, body, instance_id):
        """Cancel a running instance; its open tasks and timers are withdrawn."""
        command = instances.CancelInstance(instance_id, current_actor(), body.get("reason"))
        return instances.cancel_instance(command, uow())
