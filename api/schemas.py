"""Marshmallow schemas of the core resources: what the API accepts and what it returns (and documents)."""

from __future__ import annotations

from functools import cache

from marshmallow import fields, validate

from api.schema_base import Schema
from bpm.clock import utc
from bpm.domain.model import ROLES, SCOPES


@cache
def field_names(schema_class: type[Schema]) -> tuple[str, ...]:
    """The fields a schema class dumps, computed once (building a schema instance deep-copies all its fields)."""
    return tuple(schema_class().fields)


class UTCDateTime(fields.DateTime):
    """Always ISO-8601 in UTC with an offset (SQLite hands back naive UTC datetimes)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else utc(value).isoformat()


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.Raw())
    problems = fields.List(fields.Dict())


# --- definitions ---------------------------------------------------------------------------------------------


class UploadSchema(Schema):
    file = fields.Raw(metadata={"type": "string", "format": "binary", "description": "a .bpmn file"})


class DefinitionSchema(Schema):
    id = fields.Integer()
    key = fields.String()
    version = fields.Integer()
    name = fields.String()
    checksum = fields.String()
    deployed_by = fields.String(allow_none=True)
    deployed_at = UTCDateTime()


class DefinitionDetailSchema(DefinitionSchema):
    model = fields.Dict(metadata={"description": "user tasks, gateways and element names"})
    bpmn_xml = fields.String()


class DeploymentSchema(Schema):
    definitions = fields.List(fields.Nested(DefinitionSchema))


# --- instances -----------------------------------------------------------------------------------------------------


class StartInstanceSchema(Schema):
    business_key = fields.String(allow_none=True, validate=validate.Length(max=255))
    variables = fields.Dict(keys=fields.String(), load_default=dict)
    version = fields.Integer(allow_none=True, validate=validate.Range(min=1))


class OpenStepSchema(Schema):
    """A current step of an instance and who holds it (listed with `with_tasks=true`)."""

    id = fields.String()
    name = fields.String()
    element_id = fields.String()
    assignee = fields.String(allow_none=True)
    owner = fields.String(allow_none=True, metadata={"description": "who delegated the step, if delegated"})
    candidate_users = fields.List(fields.String())
    candidate_groups = fields.List(fields.String())
    signers = fields.List(fields.String(), metadata={"description": "added signers who have not acted yet"})
    due_at = UTCDateTime(allow_none=True)
    overdue = fields.Boolean()
    last_urged_at = UTCDateTime(allow_none=True)


class InstanceSchema(Schema):
    id = fields.String()
    process_key = fields.String()
    definition_id = fields.Integer()
    business_key = fields.String(allow_none=True)
    status = fields.String()
    started_by = fields.String(allow_none=True)
    started_at = UTCDateTime()
    ended_at = UTCDateTime(allow_none=True)
    incident = fields.Dict(allow_none=True)
    # with_tasks=true only
    process_name = fields.String()
    open_tasks = fields.List(fields.Nested(OpenStepSchema))
    overdue = fields.Boolean(metadata={"description": "an open step is past its due date"})
    outcome = fields.String(metadata={"description": "the status, or `withdrawn` for a withdrawn instance"})


class InstanceQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(["running", "completed", "cancelled"]))
    key = fields.String()
    business_key = fields.String()
    started_by = fields.String(metadata={"description": "a username, or `me`: the instances you started, newest "
                                                        "first; anyone may list their own"})
    with_tasks = fields.Boolean(load_default=False,
                                metadata={"description": "add process_name, open_tasks, overdue and outcome"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(metadata={"description": "the id of the last instance of the previous page: return "
                                                   "the instances after it (by id; newest first with started_by=me)"})


class CancelSchema(Schema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=2000))


class HistorySchema(Schema):
    id = fields.Integer()
    at = UTCDateTime()
    event = fields.String()
    actor = fields.String(allow_none=True)
    element_id = fields.String(allow_none=True)
    element_name = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    data = fields.Dict()


# --- tasks -----------------------------------------------------------------------------------------------------------


class TaskSchema(Schema):
    id = fields.String()
    instance_id = fields.String()
    process_key = fields.String()
    business_key = fields.String(allow_none=True)
    element_id = fields.String()
    name = fields.String()
    status = fields.String()
    assignee = fields.String(allow_none=True)
    candidate_groups = fields.List(fields.String())
    candidate_users = fields.List(fields.String())
    due_at = UTCDateTime(allow_none=True)
    priority = fields.Integer()
    form_key = fields.String(allow_none=True)
    created_at = UTCDateTime()
    claimed_at = UTCDateTime(allow_none=True)
    completed_at = UTCDateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)


class WaitingTimerSchema(Schema):
    element_id = fields.String()
    kind = fields.String()
    due_at = UTCDateTime()


class InstanceDetailSchema(InstanceSchema):
    version = fields.Integer(metadata={"description": "the definition version the instance runs on"})
    variables = fields.Dict()
    open_tasks = fields.List(fields.Nested(TaskSchema))
    path = fields.List(fields.String(), metadata={"description": "BPMN ids of completed elements, in order"})
    timers = fields.List(fields.Nested(WaitingTimerSchema),
                         metadata={"description": "timers the instance waits on, soonest first"})


class TaskDetailSchema(TaskSchema):
    data = fields.Dict()
    form = fields.Dict(allow_none=True)


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskSchema))
    next_cursor = fields.String(allow_none=True)


class TaskQuerySchema(Schema):
    scope = fields.String(load_default="all", validate=validate.OneOf(["all", "mine", "claimable", "completed"]),
                          metadata={"description": "all = assigned to me or claimable by me"})
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "completed"]))
    process = fields.String()
    business_key = fields.String()
    due_before = fields.AwareDateTime(default_timezone=None)
    sort = fields.String(load_default="due", validate=validate.OneOf(["due", "priority", "created"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String()


class CompleteTaskSchema(Schema):
    variables = fields.Dict(keys=fields.String(), load_default=dict)


# --- identity --------------------------------------------------------------------------------------------------------


class UserCreateSchema(Schema):
    username = fields.String(required=True, validate=[validate.Length(min=1, max=150),
                                                      validate.Regexp(r"^[A-Za-z0-9_.@-]+$")])
    display_name = fields.String(load_default="")
    email = fields.Email(allow_none=True)
    groups = fields.List(fields.String(validate=validate.Length(min=1, max=150)), load_default=list)
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), load_default=list)
    supervisor = fields.String(allow_none=True)


class UserSchema(Schema):
    username = fields.String()
    display_name = fields.String()
    email = fields.String(allow_none=True)
    roles = fields.List(fields.String())
    groups = fields.Method("group_names")
    supervisor = fields.String(allow_none=True)
    created_at = UTCDateTime()

    def group_names(self, user):
        return sorted(g.name for g in user.groups)


class GroupCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=150))
    display_name = fields.String(load_default="")


class GroupSchema(Schema):
    name = fields.String()
    display_name = fields.String()
    members = fields.List(fields.String())


class TokenCreateSchema(Schema):
    name = fields.String(load_default="")
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), allow_none=True)
    expires_at = fields.AwareDateTime(allow_none=True)


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    scopes = fields.List(fields.String(), allow_none=True)
    expires_at = UTCDateTime(allow_none=True)
    revoked_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()


class IssuedTokenSchema(TokenSchema):
    token = fields.String(metadata={"description": "shown once; only its hash is stored"})
