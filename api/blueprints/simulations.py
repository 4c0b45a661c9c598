"""Run a scenario against BPMN (uploaded text or a deployed version) in memory; saved regression scenarios."""

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from api.schemas import UTCDateTime, field_names
from bpm.services import simulation

blp = Blueprint("simulations", __name__, url_prefix="/api/v1", description="Scenario simulation (nothing is stored)")


class ScenarioSchema(Schema):
    variables = fields.Dict(keys=fields.String(), load_default=dict)
    steps = fields.List(fields.Dict(), load_default=list, validate=validate.Length(max=simulation.MAX_STEPS),
                        metadata={"description": "{task: element_id, variables} | {advance: 'P1D'} | "
                                                 "{message: name, variables}"})
    max_steps = fields.Integer(validate=validate.Range(min=1, max=simulation.MAX_STEPS))
    expect = fields.Dict(metadata={"description": "optional: completed, path_includes, path_excludes, variables"})


class SimulationRequestSchema(Schema):
    bpmn = fields.String(validate=validate.Length(min=1, max=5_000_000), metadata={"description": "BPMN XML"})
    process_key = fields.String(validate=validate.Length(min=1, max=255))
    version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    scenario = fields.Nested(ScenarioSchema, load_default=dict)


class SimulationResultSchema(Schema):
    process_key = fields.String()
    version = fields.Integer()
    ok = fields.Boolean()
    failure = fields.Dict(allow_none=True)
    completed = fields.Boolean()
    path = fields.List(fields.String())
    decisions = fields.List(fields.Dict())
    timers_fired = fields.List(fields.Dict())
    messages = fields.List(fields.Dict())
    tasks = fields.List(fields.Dict(), metadata={"description": "each user task with due, completed and SLA"})
    open_tasks = fields.List(fields.String())
    waiting_timers = fields.List(fields.Dict())
    waiting_messages = fields.List(fields.String())
    variables = fields.Dict()
    finished_at = UTCDateTime()


class SaveScenarioSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    scenario = fields.Nested(ScenarioSchema, required=True)


class SavedScenarioSchema(Schema):
    id = fields.Integer()
    process_key = fields.String()
    name = fields.String()
    description = fields.String()
    scenario = fields.Dict()
    created_by = fields.String(allow_none=True)
    created_at = UTCDateTime()


class SavedScenarioResultSchema(SavedScenarioSchema):
    result = fields.Nested(SimulationResultSchema)


@blp.route("/simulations")
class Simulations(MethodView):
    @blp.arguments(SimulationRequestSchema)
    @blp.response(200, SimulationResultSchema)
    def post(self, body):
        """Simulate a scenario: path, decisions, timers fired, SLA per task, final variables; nothing stored."""
        request = simulation.SimulateRequest(current_actor(), _jsonable(body.get("scenario") or {}),
                                             body.get("bpmn"), body.get("process_key"), body.get("version"))
        return simulation.run_simulation(request, uow())


@blp.route("/process-definitions/<string:key>/scenarios")
class Scenarios(MethodView):
    @blp.response(200, SavedScenarioSchema(many=True))
    def get(self, key):
        """Scenarios saved for this process; each runs on every new upload of the key."""
        return simulation.list_scenarios(uow(), current_actor(), key)

    @blp.arguments(SaveScenarioSchema)
    @blp.response(201, SavedScenarioResultSchema)
    def post(self, body, key):
        """Save (or replace by name) a scenario; returns its result on the newest version."""
        command = simulation.SaveScenario(key, body["name"], _jsonable(body["scenario"]), current_actor(),
                                          body.get("description", ""))
        row, result = simulation.save_scenario(command, uow())
        return {**{name: getattr(row, name) for name in field_names(SavedScenarioSchema)}, "result": result}


@blp.route("/process-definitions/<string:key>/scenarios/<string:name>")
class ScenarioResource(MethodView):
    @blp.response(204)
    def delete(self, key, name):
        """Remove a saved scenario."""
        simulation.delete_scenario(uow(), current_actor(), key, name)


def _jsonable(scenario: dict) -> dict:
    return {k: v for k, v in scenario.items() if v is not None}
