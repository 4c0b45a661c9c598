"""Approval operations on tasks and the approver's own settings (deputy, saved filters, CC inbox, who am I)."""

from __future__ import annotations

from flask import request, send_file
from flask.views import MethodView

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.errors import STATUS
from api.schemas import InstanceSchema
from api.schemas_approvals import (
    AddSignerSchema,
    AssignSchema,
    AttachmentSchema,
    AttachmentUploadSchema,
    BulkApproveSchema,
    BulkResultSchema,
    CommentCreateSchema,
    CommentOnlySchema,
    CommentSchema,
    CountsSchema,
    DecideSchema,
    HandOverSchema,
    InboxPageSchema,
    InboxQuerySchema,
    InboxTaskSchema,
    MeSchema,
    RejectSchema,
    RemoveSignerSchema,
    ResolveSchema,
    SavedFilterCreateSchema,
    SavedFilterSchema,
    SendBackSchema,
    SignerSchema,
    SubstituteOutSchema,
    SubstituteSchema,
    WithdrawSchema,
)
from bpm.domain.errors import ValidationFailed
from bpm.services import approvals, collaboration, identity, tasks

blp = Blueprint("approvals", __name__, url_prefix="/api/v1", description="Approval operations and inbox settings")


def _decide(task_id, outcome, body):
    command = approvals.Decide(task_id, current_actor(), outcome, body.get("opinion"), body.get("reason"),
                               body.get("variables") or {})
    return approvals.decide(command, uow())


@blp.route("/tasks/<string:task_id>/approve")
class Approve(MethodView):
    @blp.arguments(DecideSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """Approve (sets approved=true, outcome="approved", opinion, and appends to `approvals`)."""
        return _decide(task_id, approvals.APPROVED, body)


@blp.route("/tasks/<string:task_id>/reject")
class Reject(MethodView):
    @blp.arguments(RejectSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """Reject with an opinion and reason (approved=false, outcome="rejected")."""
        return _decide(task_id, approvals.REJECTED, body)


@blp.route("/tasks/<string:task_id>/assign")
class Assign(MethodView):
    @blp.arguments(AssignSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """Assign the task to someone (an admin or the assignee's supervisor)."""
        return approvals.assign(task_id, current_actor(), body["assignee"], uow())


@blp.route("/tasks/<string:task_id>/delegate")
class Delegate(MethodView):
    @blp.arguments(HandOverSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """委派: the delegatee works the task, then resolves it back to you to finish."""
        return approvals.delegate(task_id, current_actor(), body["to"], body.get("comment"), uow())


@blp.route("/tasks/<string:task_id>/resolve")
class Resolve(MethodView):
    @blp.arguments(ResolveSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """The delegatee hands the task back to its owner (optionally with variables)."""
        return approvals.resolve(task_id, current_actor(), body.get("comment"), body.get("variables") or {}, uow())


@blp.route("/tasks/<string:task_id>/transfer")
class Transfer(MethodView):
    @blp.arguments(HandOverSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """转办: the task moves to another person for good."""
        return approvals.transfer(task_id, current_actor(), body["to"], body.get("comment"), uow())


@blp.route("/tasks/<string:task_id>/add-signer")
class AddSigner(MethodView):
    @blp.arguments(AddSignerSchema)
    @blp.response(201, SignerSchema(many=True))
    def post(self, body, task_id):
        """加签: add signers before you, after you, or in parallel with you."""
        command = approvals.AddSigners(task_id, current_actor(), body["users"], body["position"],
                                       body.get("comment"))
        return approvals.add_signers(command, uow())


@blp.route("/tasks/<string:task_id>/remove-signer")
class RemoveSigner(MethodView):
    @blp.arguments(RemoveSignerSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """减签: remove a signer who has not acted yet."""
        return approvals.remove_signer(task_id, current_actor(), body["username"], uow())


@blp.route("/tasks/<string:task_id>/signers")
class Signers(MethodView):
    @blp.response(200, SignerSchema(many=True))
    def get(self, task_id):
        """Signers added to the task and what they did."""
        unit = uow()
        with unit:
            collaboration.visible_task(unit, current_actor(), task_id)
            return approvals.list_signers(unit, task_id)


@blp.route("/tasks/<string:task_id>/send-back")
class SendBack(MethodView):
    @blp.arguments(SendBackSchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """退回: resume at the previous step (or a chosen earlier completed step); later steps run again."""
        return approvals.send_back(task_id, current_actor(), body.get("to_element_id"), body.get("comment"), uow())


@blp.route("/tasks/<string:task_id>/urge")
class Urge(MethodView):
    @blp.arguments(CommentOnlySchema)
    @blp.response(200, InboxTaskSchema)
    def post(self, body, task_id):
        """催办: remind the current assignees (once per 10 minutes per task; 429 with Retry-After)."""
        return approvals.urge(task_id, current_actor(), body.get("comment"), uow())


@blp.route("/tasks/<string:task_id>/comments")
class Comments(MethodView):
    @blp.response(200, CommentSchema(many=True))
    def get(self, task_id):
        """Comments on the task, oldest first."""
        return collaboration.list_comments(task_id, current_actor(), uow())

    @blp.arguments(CommentCreateSchema)
    @blp.response(201, CommentSchema)
    def post(self, body, task_id):
        """Comment; @username mentions notify those users."""
        return collaboration.add_comment(task_id, current_actor(), body["text"], uow())


@blp.route("/tasks/<string:task_id>/attachments")
class Attachments(MethodView):
    @blp.response(200, AttachmentSchema(many=True))
    def get(self, task_id):
        """Files attached to the task."""
        return collaboration.list_attachments(task_id, current_actor(), uow())

    @blp.arguments(AttachmentUploadSchema, location="files")
    @blp.response(201, AttachmentSchema)
    def post(self, _files, task_id):
        """Attach a file (multipart field `file`; at most 10 MB; PDF, images, text, CSV and Office files)."""
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed("send the file as multipart field 'file'", {"file": ["missing"]})
        data = upload.stream.read(collaboration.MAX_ATTACHMENT_BYTES + 1)
        return collaboration.add_attachment(task_id, current_actor(), collaboration.Upload(
            upload.filename or "attachment", upload.mimetype or "", data), uow())


@blp.before_request
def _allow_large_attachments():
    if request.method == "POST" and request.path.endswith("/attachments"):
        request.max_content_length = collaboration.MAX_ATTACHMENT_BYTES + 1_000_000


@blp.route("/attachments/<int:attachment_id>")
class AttachmentDownload(MethodView):
    @blp.response(200, description="the file")
    def get(self, attachment_id):
        """Download an attachment (only for people who may see its task)."""
        row, path = collaboration.open_attachment(attachment_id, current_actor(), uow())
        return send_file(path, mimetype=row.content_type, as_attachment=True, download_name=row.filename)


@blp.route("/process-instances/<string:instance_id>/withdraw")
class Withdraw(MethodView):
    @blp.arguments(WithdrawSchema)
    @blp.response(200, InstanceSchema)
    def post(self, body, instance_id):
        """撤回: the initiator withdraws the instance while the next step has not been acted on."""
        return approvals.withdraw(instance_id, current_actor(), body.get("reason"), uow())


@blp.route("/tasks/bulk-approve")
class BulkApprove(MethodView):
    @blp.arguments(BulkApproveSchema)
    @blp.response(200, BulkResultSchema(many=True))
    def post(self, body):
        """Approve several tasks; each gets its own result (and its own transaction)."""
        results = approvals.bulk_approve(body["task_ids"], current_actor(), body.get("opinion"), uow())
        return [{**r, "status": r.get("status") or STATUS_BY_CODE.get(r.get("error"), 400)} for r in results]


STATUS_BY_CODE = {error_class.code: status for error_class, status in STATUS.items()}


@blp.route("/tasks/counts")
class Counts(MethodView):
    @blp.response(200, CountsSchema)
    def get(self):
        """Open-task counts per inbox filter, for badges."""
        return tasks.count_tasks(uow(), current_actor())


@blp.route("/cc")
class CcInbox(MethodView):
    @blp.arguments(InboxQuerySchema, location="query")
    @blp.response(200, InboxPageSchema)
    def get(self, query):
        """Tasks I am copied in on (read-only), any status unless `status` says otherwise."""
        if "status" not in request.args:
            query["status"] = "any"
        query["scope"] = "cc"
        items, next_cursor = tasks.list_tasks(uow(), current_actor(), inbox_query(query))
        return {"items": items, "next_cursor": next_cursor}


def inbox_query(query: dict) -> tasks.TaskQuery:
    return tasks.TaskQuery(query["scope"], query["status"], query.get("process"), query.get("business_key"),
                           query.get("due_before"), query["sort"], query["limit"], query.get("cursor"),
                           query.get("overdue", False), query.get("priority"), query.get("q"))


@blp.route("/saved-filters")
class SavedFilters(MethodView):
    @blp.response(200, SavedFilterSchema(many=True))
    def get(self):
        """My saved inbox filters."""
        return collaboration.list_filters(current_actor(), uow())

    @blp.arguments(SavedFilterCreateSchema)
    @blp.response(201, SavedFilterSchema)
    def post(self, body):
        """Save an inbox filter under a name (409 if the name is taken)."""
        return collaboration.save_filter(current_actor(), body["name"], body["query"], uow())


@blp.route("/saved-filters/<int:filter_id>")
class SavedFilterResource(MethodView):
    @blp.response(204)
    def delete(self, filter_id):
        """Delete one of my saved filters."""
        collaboration.delete_filter(current_actor(), filter_id, uow())


@blp.route("/users/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    def get(self):
        """Who I am: username, display name, roles and groups."""
        actor = current_actor()
        unit = uow()
        with unit:
            user = identity.get_user(actor.username, unit)
        return {"username": actor.username, "display_name": user.display_name or actor.username,
                "roles": sorted(actor.roles), "groups": sorted(actor.groups), "supervisor": user.supervisor,
                "locale": user.locale}


@blp.route("/users/me/substitute")
class MySubstitute(MethodView):
    @blp.response(200, SubstituteOutSchema)
    def get(self):
        """My deputy (404 when none is set)."""
        return collaboration.get_substitute(current_actor(), uow())

    @blp.arguments(SubstituteSchema)
    @blp.response(200, SubstituteOutSchema)
    def put(self, body):
        """Set my deputy for a date range: new tasks for me go to them, marked as such."""
        return collaboration.set_substitute(current_actor(), body["deputy"], body["starts_at"], body["ends_at"],
                                            uow())

    @blp.response(204)
    def delete(self):
        """Remove my deputy."""
        collaboration.clear_substitute(current_actor(), uow())

