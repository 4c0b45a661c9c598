"""The authorization table of the whole API: every route x principal -> the expected status.

Principals: admin, designer (dora), integrator (ivan), approver (alice), a user with no role, no token, the
integrator's token narrowed to the `read` scope, an expired admin token and a revoked admin token. Path
parameters point at nothing (404 means "allowed, but no such object"); bodies are valid where the role check
comes after validation. A route missing from the table fails the test: add it with its expected row.
"""

from __future__ import annotations

from authz_harness import PRINCIPALS, api_routes, call, example_bodies, prepare, principal_headers

# route: statuses for admin designer integrator approver no_role no_token narrowed expired revoked
TABLE = {
    "DELETE /api/v1/process-definitions/<string:key>/scenarios/<string:name>": "404 404 403 403 403 401 403 401 401",
    "DELETE /api/v1/saved-filters/<int:filter_id>": "404 404 404 404 404 401 404 401 401",
    "DELETE /api/v1/users/<string:username>/tokens/<int:token_id>": "404 403 403 403 403 401 403 401 401",
    "DELETE /api/v1/users/me/substitute": "204 204 204 204 204 401 204 401 401",
    "DELETE /api/v1/webhooks/<int:subscription_id>": "404 403 404 403 403 401 403 401 401",
    "GET /api/v1/attachments/<int:attachment_id>": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/cc": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/clock": "404 403 403 403 403 401 403 401 401",
    "GET /api/v1/contacts": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/contacts/<int:contact_id>": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/customers": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/customers/<int:customer_id>": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/deliveries": "200 403 403 403 403 401 403 401 401",
    "GET /api/v1/deliveries/<int:delivery_id>": "404 403 403 403 403 401 403 401 401",
    "GET /api/v1/forms": "200 200 403 403 403 401 403 401 401",
    "GET /api/v1/forms/<string:key>": "404 404 403 403 403 401 403 401 401",
    "GET /api/v1/groups": "200 403 403 403 403 401 403 401 401",
    "GET /api/v1/incidents": "200 200 403 403 403 401 403 401 401",
    "GET /api/v1/incidents/<int:incident_id>": "404 404 403 403 403 401 403 401 401",
    "GET /api/v1/interactions": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/leads": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/leads/<int:lead_id>": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/notifications": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/notifications/unread-count": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/process-definitions": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/process-definitions/<string:key>": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/process-definitions/<string:key>/diff": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/process-definitions/<string:key>/scenarios": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/process-definitions/<string:key>/versions": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/process-definitions/<string:key>/versions/<int:version>": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/process-instances": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/process-instances/<string:instance_id>": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/process-instances/<string:instance_id>/documents/quote.pdf": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/process-instances/<string:instance_id>/history": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/quotes": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/quotes/<int:quote_id>": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/quotes/<int:quote_id>/pdf": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/rules": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/rules/<string:name>": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/rules/<string:name>/versions": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/saved-filters": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/tasks": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/tasks/<string:task_id>": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/tasks/<string:task_id>/attachments": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/tasks/<string:task_id>/comments": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/tasks/<string:task_id>/signers": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/tasks/counts": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/tickets": "200 200 200 200 403 401 200 401 401",
    "GET /api/v1/tickets/<int:ticket_id>": "404 404 404 404 403 401 404 401 401",
    "GET /api/v1/users": "200 403 403 403 403 401 403 401 401",
    "GET /api/v1/users/<string:username>/tokens": "200 403 403 403 403 401 403 401 401",
    "GET /api/v1/users/me": "200 200 200 200 200 401 200 401 401",
    "GET /api/v1/users/me/substitute": "404 404 404 404 404 401 404 401 401",
    "GET /api/v1/webhooks": "200 403 200 403 403 401 403 401 401",
    "GET /api/v1/webhooks/<int:subscription_id>": "404 403 404 403 403 401 403 401 401",
    "GET /api/v1/webhooks/<int:subscription_id>/deliveries": "404 403 404 403 403 401 403 401 401",
    "PATCH /api/v1/contacts/<int:contact_id>": "404 404 404 404 403 401 403 401 401",
    "PATCH /api/v1/customers/<int:customer_id>": "404 404 404 404 403 401 403 401 401",
    "PATCH /api/v1/leads/<int:lead_id>": "404 404 404 404 403 401 403 401 401",
    "PATCH /api/v1/quotes/<int:quote_id>": "404 404 404 404 403 401 403 401 401",
    "PATCH /api/v1/tickets/<int:ticket_id>": "404 404 404 404 403 401 403 401 401",
    "PATCH /api/v1/webhooks/<int:subscription_id>": "404 403 404 403 403 401 403 401 401",
    "POST /api/v1/clock/advance": "422 422 422 422 422 401 422 401 401",
    "POST /api/v1/contacts": "422 422 422 422 403 401 403 401 401",
    "POST /api/v1/customers": "201 201 201 201 403 401 403 401 401",
    "POST /api/v1/deliveries/<int:delivery_id>/retry": "404 403 403 403 403 401 403 401 401",
    "POST /api/v1/groups": "201 403 403 403 403 401 403 401 401",
    "POST /api/v1/incidents/<int:incident_id>/retry": "404 404 403 403 403 401 403 401 401",
    "POST /api/v1/interactions": "422 422 422 422 403 401 403 401 401",
    "POST /api/v1/leads": "422 422 422 422 403 401 403 401 401",
    "POST /api/v1/leads/<int:lead_id>/claim": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/messages": "404 403 404 403 403 401 403 401 401",
    "POST /api/v1/notifications/<int:notification_id>/read": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/notifications/read-all": "200 200 200 200 200 401 200 401 401",
    "POST /api/v1/process-definitions": "422 422 403 403 403 401 403 401 401",
    "POST /api/v1/process-definitions/<string:key>/instances": "201 201 201 201 403 401 403 401 401",
    "POST /api/v1/process-definitions/<string:key>/migrations": "404 404 403 403 403 401 403 401 401",
    "POST /api/v1/process-definitions/<string:key>/scenarios": "201 201 403 403 403 401 403 401 401",
    "POST /api/v1/process-instances/<string:instance_id>/cancel": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/process-instances/<string:instance_id>/withdraw": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/quotes": "422 422 422 422 403 401 403 401 401",
    "POST /api/v1/quotes/<int:quote_id>/submit": "404 404 404 404 403 401 403 401 401",
    "POST /api/v1/rules/<string:name>/evaluate": "404 404 404 404 403 401 404 401 401",
    "POST /api/v1/saved-filters": "201 201 201 201 201 401 409 401 401",
    "POST /api/v1/simulations": "200 200 403 403 403 401 403 401 401",
    "POST /api/v1/tasks/<string:task_id>/add-signer": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/approve": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/assign": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/attachments": "422 422 422 422 422 401 422 401 401",
    "POST /api/v1/tasks/<string:task_id>/claim": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/comments": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/complete": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/delegate": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/reject": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/remove-signer": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/resolve": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/send-back": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/transfer": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/unclaim": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/<string:task_id>/urge": "404 404 404 404 404 401 404 401 401",
    "POST /api/v1/tasks/bulk-approve": "200 200 200 200 200 401 200 401 401",
    "POST /api/v1/tickets": "404 404 404 404 403 401 403 401 401",
    "POST /api/v1/users": "201 403 403 403 403 401 403 401 401",
    "POST /api/v1/users/<string:username>/tokens": "201 403 403 403 403 401 403 401 401",
    "POST /api/v1/webhooks": "201 403 201 403 403 401 403 401 401",
    "POST /api/v1/webhooks/<int:subscription_id>/deliveries/<int:delivery_id>/redeliver":
        "404 403 404 403 403 401 403 401 401",
    "PUT /api/v1/clock": "404 403 403 403 403 401 403 401 401",
    "PUT /api/v1/tasks/<string:task_id>/due-date": "404 404 404 404 404 401 404 401 401",
    "PUT /api/v1/forms/<string:key>": "422 422 403 403 403 401 403 401 401",
    "PUT /api/v1/rules/<string:name>": "422 403 403 403 403 401 403 401 401",
    "GET /api/v1/users/me/tokens": "200 200 200 200 200 401 200 401 401",
    "POST /api/v1/users/me/tokens": "201 201 201 201 201 401 403 401 401",
    "DELETE /api/v1/users/me/tokens/<int:token_id>": "404 404 404 404 404 401 404 401 401",
    "PUT /api/v1/users/me/substitute": "422 422 422 422 422 401 422 401 401",
}


def test_every_api_route_is_in_the_table(app):
    missing = [route for route in api_routes(app) if route not in TABLE]
    assert not missing, f"add these routes to the authorization table: {missing}"


def test_authorization_table(app, client, users, context):
    prepare(client, users)
    headers = principal_headers(context, users)
    examples = example_bodies(client.get("/api/v1/openapi.json").json)
    mismatches = []
    for route in api_routes(app):
        expected = TABLE.get(route, "").split()
        for principal, want in zip(PRINCIPALS, expected, strict=False):
            got = call(client, route, headers[principal], examples)
            if str(got) != want:
                mismatches.append(f"{route} as {principal}: expected {want}, got {got}")
    assert not mismatches, "\n".join(mismatches)


def test_credentials_that_fail_are_401_everywhere():
    for route, row in TABLE.items():
        statuses = dict(zip(PRINCIPALS, row.split(), strict=True))
        assert {statuses["no_token"], statuses["expired"], statuses["revoked"]} == {"401"}, route


def test_narrowed_token_never_exceeds_its_user():
    """A read-scoped token of the integrator is never allowed where the integrator itself is denied."""
    for route, row in TABLE.items():
        statuses = dict(zip(PRINCIPALS, row.split(), strict=True))
        if statuses["integrator"] in ("401", "403"):
            assert statuses["narrowed"] in ("401", "403"), route
