"""Schemas of the approver inbox API: approval operations, comments, attachments, deputies, saved filters."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schema_base import Schema
from api.schemas import TaskQuerySchema, TaskSchema, UTCDateTime
from bpm.services.tasks import SCOPES, STATUSES

OPINION = fields.String(allow_none=True, validate=validate.Length(max=4000))
COMMENT = fields.String(allow_none=True, validate=validate.Length(max=4000))
USERNAME = fields.String(required=True, validate=validate.Length(min=1, max=150))


class InboxTaskSchema(TaskSchema):
    owner = fields.String(allow_none=True, metadata={"description": "who delegated the task (委派)"})
    delegation_state = fields.String(allow_none=True, metadata={"description": "pending | resolved"})
    substitute_for = fields.String(allow_none=True, metadata={"description": "the user a deputy stands in for"})
    original_assignee = fields.String(attribute="substitute_for", allow_none=True, dump_only=True)
    last_urged_at = UTCDateTime(allow_none=True)


class InboxTaskDetailSchema(InboxTaskSchema):
    data = fields.Dict()
    form = fields.Dict(allow_none=True)
    actions = fields.List(fields.String(), metadata={
        "description": "operations the caller may perform now: approve, reject, claim, unclaim, delegate, resolve, "
                       "transfer, add-signer, remove-signer, send-back, assign, urge, comment, attach"})


class InboxPageSchema(Schema):
    items = fields.List(fields.Nested(InboxTaskSchema))
    next_cursor = fields.String(allow_none=True)


class InboxQuerySchema(TaskQuerySchema):
    scope = fields.String(load_default="all", validate=validate.OneOf(SCOPES),
                          metadata={"description": "all = mine + my groups; groups = unclaimed via my groups; "
                                                   "delegated, cc, signing, completed"})
    status = fields.String(load_default="open", validate=validate.OneOf(STATUSES))
    overdue = fields.Boolean(load_default=False)
    priority = fields.Integer(metadata={"description": "minimum priority"})
    q = fields.String(validate=validate.Length(max=200),
                      metadata={"description": "text search on task name and business key"})


class DecideSchema(Schema):
    opinion = OPINION
    variables = fields.Dict(keys=fields.String(), load_default=dict)


class RejectSchema(DecideSchema):
    reason = COMMENT


class AssignSchema(Schema):
    assignee = USERNAME


class HandOverSchema(Schema):
    to = USERNAME
    comment = COMMENT


class ResolveSchema(Schema):
    comment = COMMENT
    variables = fields.Dict(keys=fields.String(), load_default=dict)


class AddSignerSchema(Schema):
    users = fields.List(fields.String(validate=validate.Length(min=1, max=150)), required=True,
                        validate=validate.Length(min=1, max=50))
    position = fields.String(required=True, validate=validate.OneOf(["before", "after", "parallel"]))
    comment = COMMENT


class RemoveSignerSchema(Schema):
    username = USERNAME


class SignerSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    position = fields.String()
    status = fields.String()
    added_by = fields.String()
    outcome = fields.String(allow_none=True)
    opinion = fields.String(allow_none=True)
    added_at = UTCDateTime()
    acted_at = UTCDateTime(allow_none=True)


class SendBackSchema(Schema):
    to_element_id = fields.String(allow_none=True, metadata={"description": "default: the previous step"})
    comment = COMMENT


class CommentOnlySchema(Schema):
    comment = COMMENT


class WithdrawSchema(Schema):
    reason = COMMENT


class CommentCreateSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=10000))


class CommentSchema(Schema):
    id = fields.Integer()
    task_id = fields.String()
    author = fields.String()
    text = fields.String()
    mentions = fields.List(fields.String())
    created_at = UTCDateTime()


class AttachmentUploadSchema(Schema):
    file = fields.Raw(metadata={"type": "string", "format": "binary"})


class AttachmentSchema(Schema):
    id = fields.Integer()
    task_id = fields.String()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    uploaded_by = fields.String()
    created_at = UTCDateTime()


class BulkApproveSchema(Schema):
    task_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=200))
    opinion = OPINION


class BulkResultSchema(Schema):
    task_id = fields.String()
    ok = fields.Boolean()
    status = fields.Integer()
    error = fields.String()
    detail = fields.String()


class CountsSchema(Schema):
    all = fields.Integer()
    mine = fields.Integer()
    groups = fields.Integer()
    delegated = fields.Integer()
    cc = fields.Integer()
    signing = fields.Integer()
    overdue = fields.Integer()


class SavedFilterCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    query = fields.Dict(keys=fields.String(), load_default=dict,
                        metadata={"description": "inbox query parameters (scope, process, q, sort ...)"})


class SavedFilterSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    query = fields.Dict()
    created_at = UTCDateTime()


class SubstituteSchema(Schema):
    deputy = USERNAME
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)


class SubstituteOutSchema(Schema):
    username = fields.String()
    deputy = fields.String()
    starts_at = UTCDateTime()
    ends_at = UTCDateTime()


class MeSchema(Schema):
    username = fields.String()
    display_name = fields.String()
    roles = fields.List(fields.String())
    groups = fields.List(fields.String())
    supervisor = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
