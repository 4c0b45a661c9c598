"""Texts the page scripts show, translated on the server and handed to the browser as one JSON object.

Keeping them here lets pybabel extract them with the templates' texts into the same catalog.
"""

from __future__ import annotations

from flask_babel import lazy_gettext

_ = lazy_gettext

TEXTS = {
    "network_error": _("The server cannot be reached."),
    "not_available": _("This operation is not available on this server."),
    "true": _("true"), "false": _("false"), "taken": _("taken"), "default_flow": _("default flow"),
    "system": _("system"),
    "ev_instance_started": _("started the process"), "ev_instance_completed": _("process completed"),
    "ev_instance_cancelled": _("cancelled the process"), "ev_task_created": _("step reached"),
    "ev_task_claimed": _("claimed"), "ev_task_unclaimed": _("released"), "ev_task_completed": _("completed"),
    "ev_task_cancelled": _("step withdrawn"), "ev_gateway_decision": _("decision"),
    "ev_task_approved": _("approved"), "ev_task_rejected": _("rejected"), "ev_task_signed": _("signed"),
    "ev_task_signers_added": _("added signers"), "ev_task_signer_removed": _("removed a signer"),
    "ev_task_assigned": _("assigned"), "ev_task_delegated": _("delegated"),
    "ev_task_resolved": _("returned to owner"), "ev_task_transferred": _("transferred"),
    "ev_task_sent_back": _("sent back"), "ev_task_reopened": _("step reopened"),
    "ev_task_urged": _("urged"), "ev_task_cc": _("copied in"), "ev_task_commented": _("commented"),
    "ev_task_attachment_added": _("attached a file"), "ev_task_substituted": _("deputy stands in"),
    "ev_instance_withdrawn": _("withdrew the request"), "ev_timer_fired": _("timer fired"),
    "ev_message_received": _("message received"), "ev_instance_migrated": _("moved to a new version"),
    "field_assignee": _("Assignee"), "field_users": _("Users"), "previous_step": _("the previous step"),
    "field_opinion": _("Opinion"), "field_reason": _("Reason"), "field_comment": _("Comment"),
    "field_to": _("To user"), "field_outcome": _("Outcome"), "field_signers": _("Users (comma separated)"),
    "field_position": _("Position"), "field_step": _("Send back to step"),
    "position_before": _("before me"), "position_after": _("after me"), "position_parallel": _("in parallel with me"),
    "username_placeholder": _("username"),
    "inbox_empty": _("Nothing here. Your inbox is clear."),
    "overdue": _("overdue"), "due": _("due"), "assigned_to_me": _("assigned to me"),
    "unclaimed_in": _("unclaimed, groups: {groups}"),
    "no_deputy": _("No deputy while you are away."), "deputy_set": _("Deputy {deputy}: {from} – {to}."),
    "change": _("Change"),
    "approved_task": _("Approved: {name}"), "select_task": _("Select for bulk approval"),
    "approve_selected": _("Approve selected ({count})"), "approved_count": _("Approved {count} tasks."),
    "rejected_task": _("Rejected: {name}"),
    "op_approve": _("Approve"), "op_reject": _("Reject"), "op_complete": _("Complete"), "op_claim": _("Claim"),
    "op_unclaim": _("Release"), "op_resolve": _("Return to owner"), "op_delegate": _("Delegate"),
    "op_transfer": _("Transfer"), "op_add-signer": _("Add signer"), "op_send-back": _("Send back"),
    "op_urge": _("Urge"), "op_withdraw": _("Withdraw"), "op_remove-signer": _("Remove signer"),
    "op_assign": _("Assign"), "done_remove-signer": _("Signer removed."), "done_assign": _("Assigned."),
    "field_signer": _("Signer to remove"), "signers": _("Signers"), "signer_pending": _("waiting"),
    "signer_done": _("has signed"),
    "done_approve": _("Approved."), "done_reject": _("Rejected."), "done_complete": _("Completed."),
    "done_claim": _("Claimed."), "done_unclaim": _("Released."), "done_resolve": _("Returned to the owner."),
    "done_delegate": _("Delegated."), "done_transfer": _("Transferred."), "done_add-signer": _("Signer added."),
    "done_send-back": _("Sent back."), "done_urge": _("Reminder sent."), "done_withdraw": _("Withdrawn."),
    "confirm_reject": _("Rejecting ends this approval as rejected. Give a reason."),
    "confirm_send-back": _("The process goes back to the chosen step; the steps after it run again."),
    "confirm_withdraw": _("The whole request is withdrawn and its open steps are cancelled."),
    "read_only_cc": _("You were copied in: read only."), "no_actions": _("Nothing for you to do here."),
    "status_open": _("open"), "status_completed": _("completed"), "status_cancelled": _("cancelled"),
    "status_running": _("running"),
    "assignee": _("Assignee"), "delegated_by": _("Delegated by"), "priority": _("Priority"),
    "form_error": _("The form cannot be shown"), "form_invalid": _("Please correct the form first."),
    "open_instance": _("open the instance"), "no_comments": _("No comments yet."),
    "no_attachments": _("No attachments."),
    "deployed": _("Deployed: {key} version {version}"), "deploy_rejected": _("The server rejected the BPMN:"),
    "no_selection": _("Select an element to edit its properties."), "saved": _("Saved."),
    "simulation_result": _("Simulation result"), "sim_completed": _("The process ran to its end."),
    "sim_waiting": _("The scenario ended with the process still waiting."), "sim_failed": _("The scenario failed"),
    "sim_path": _("Path"), "saved_filters": _("Saved"), "delete": _("Delete"),
    "invalid_json": _("The scenario is not valid JSON."),
    "open_tasks": _("Current steps"), "timers": _("Timers"), "decisions": _("Decisions"),
    "no_decisions": _("No gateway decided yet."), "no_timers": _("No timer waiting."),
    "no_open_tasks": _("No open step."), "op_edit": _("Edit"), "process_props": _("Process"),
    "fires_at": _("fires at {time}"), "versions": _("versions"),
    "changes_between": _("Changes from v{from} to v{to}:"),
    "new_form": _("New form"), "form_key_needed": _("Give the form a key first."),
    "form_saved": _("Saved form {key}."), "form_saved_at": _("Form {key}, saved {time}."),
    "form_shipped": _("Form {key}, as shipped."),
    # my requests (the initiator's view)
    "my_requests_empty": _("You have not started any request yet."), "status_withdrawn": _("withdrawn"),
    "started_at": _("started {time}"), "ended_at": _("ended {time}"), "held_by_groups": _("groups: {groups}"),
    "delegated_by_owner": _("delegated by {owner}"), "signers_waiting": _("signers waiting: {users}"),
    "nobody_yet": _("nobody yet"), "urge_step": _("Remind whoever holds {name}"),
}


def js_texts() -> dict[str, str]:
    return {key: str(message) for key, message in TEXTS.items()}
