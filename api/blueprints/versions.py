"""Compare two versions of a process and migrate running instances between versions."""

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from bpm.services import versions

blp = Blueprint("process-versions", __name__, url_prefix="/api/v1/process-definitions",
                description="Version diff and instance migration")


class DiffQuerySchema(Schema):
    from_version = fields.Integer(required=True, data_key="from", validate=validate.Range(min=1, max=2**31 - 1))
    to_version = fields.Integer(required=True, data_key="to", validate=validate.Range(min=1, max=2**31 - 1))


class ChangedElementSchema(Schema):
    id = fields.String()
    type = fields.String()
    changes = fields.Dict(metadata={"description": "attribute -> {from, to}"})


class DiffSchema(Schema):
    key = fields.String()
    from_version = fields.Integer()
    to_version = fields.Integer()
    added = fields.List(fields.Dict())
    removed = fields.List(fields.Dict())
    changed = fields.List(fields.Nested(ChangedElementSchema))


class MigrationRequestSchema(Schema):
    from_version = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    to_version = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    instance_ids = fields.List(fields.String(validate=validate.Length(max=36)), allow_none=True,
                               validate=validate.Length(max=1000))
    dry_run = fields.Boolean(load_default=True)


class MigrationOutcomeSchema(Schema):
    instance_id = fields.String()
    can_move = fields.Boolean()
    moved = fields.Boolean()
    reasons = fields.List(fields.String())


class MigrationResultSchema(Schema):
    dry_run = fields.Boolean()
    instances = fields.List(fields.Nested(MigrationOutcomeSchema))


@blp.route("/<string:key>/diff")
class Diff(MethodView):
    @blp.arguments(DiffQuerySchema, location="query")
    @blp.response(200, DiffSchema)
    def get(self, query, key):
        """Elements added, removed and changed (name, type, assignment, conditions, timers) between versions."""
        return versions.diff_versions(uow(), current_actor(), key, query["from_version"], query["to_version"])


@blp.route("/<string:key>/migrations")
class Migrations(MethodView):
    @blp.arguments(MigrationRequestSchema)
    @blp.response(200, MigrationResultSchema)
    def post(self, body, key):
        """Move running instances to another version where element ids match (`dry_run` only reports)."""
        command = versions.MigrateInstances(key, body["from_version"], body["to_version"], current_actor(),
                                            body.get("instance_ids"), body["dry_run"])
        return {"dry_run": command.dry_run, "instances": versions.migrate_instances(command, uow())}
