"""Business rules (json-logic): read, change with a new version (admin), try on data."""

from flask.views import MethodView

from api.auth import current_actor, require, uow
from api.blueprints import Blueprint
from api.schemas_records import RuleEvaluateSchema, RulePutSchema, RuleResultSchema, RuleSchema, RuleVersionSchema
from bpm.services import rule_store

blp = Blueprint("rules", __name__, url_prefix="/api/v1/rules",
                description="json-logic rules the shipped processes consult; edit without redeploying BPMN")


@blp.route("")
class Rules(MethodView):
    @blp.response(200, RuleSchema(many=True))
    def get(self):
        """Every rule: stored versions and shipped defaults not yet changed."""
        require("read")
        return rule_store.list_rules(uow())


@blp.route("/<string:name>")
class RuleResource(MethodView):
    @blp.response(200, RuleSchema)
    def get(self, name):
        """The current version of a rule."""
        require("read")
        return rule_store.get_rule(uow(), name)

    @blp.arguments(RulePutSchema)
    @blp.response(200, RuleSchema)
    @blp.alt_response(409, description="`expected_version` is not the current version")
    @blp.alt_response(422, description="The document is not valid json-logic (or uses a forbidden operator)")
    def put(self, body, name):
        """Save a new version (admin only); running and new instances use it from their next rule step."""
        command = rule_store.SaveRule(name, body["document"], current_actor(), body.get("description"),
                                      body.get("expected_version"))
        return rule_store.save_rule(command, uow())


@blp.route("/<string:name>/versions")
class RuleVersions(MethodView):
    @blp.response(200, RuleVersionSchema(many=True))
    def get(self, name):
        """Every saved version of a rule, oldest first."""
        require("read")
        return rule_store.rule_versions(uow(), name)


@blp.route("/<string:name>/evaluate")
class Evaluate(MethodView):
    @blp.arguments(RuleEvaluateSchema)
    @blp.response(200, RuleResultSchema)
    def post(self, body, name):
        """Apply the current version to some data (nothing is stored)."""
        require("read")
        result, label, values = rule_store.evaluate_rule(uow(), name, body["data"])
        return {"result": result, "rule": label, "values": values}
