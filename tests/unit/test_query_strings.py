"""The API's parser reads a query string into the values webargs' own MultiDictProxy gives: the same arguments,
the same errors, for repeated keys, list fields, renamed fields, unknown keys and missing required ones."""

from __future__ import annotations

import pytest
from flask import Flask
from marshmallow import EXCLUDE, RAISE, Schema, fields, validate
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from api.blueprints import _SchemaOnceParser
from api.schemas_approvals import InboxQuerySchema


class Listing(Schema):
    class Meta:
        unknown = RAISE  # webargs reads a query with unknown=EXCLUDE unless the call says otherwise

    status = fields.String(load_default="open", validate=validate.OneOf(["open", "completed"]))
    tags = fields.List(fields.String())
    pair = fields.Tuple((fields.String(), fields.Integer()))
    page_size = fields.Integer(data_key="page-size", required=True)
    flagged = fields.Boolean(load_default=False)


class Lenient(Listing):
    class Meta:
        unknown = EXCLUDE


QUERIES = [
    "page-size=10",
    "page-size=10&tags=a&tags=b&status=completed",
    "page-size=10&page-size=20&status=open&status=completed",  # a repeated single key: its first value
    "page-size=10&tags=only-one&pair=x&pair=3&flagged=true",
    "page-size=ten&tags=a",  # a value of the wrong type
    "tags=a",  # the required key left out
    "page-size=10&status=archived",  # a value the field refuses
    "page-size=10&surprise=1&surprise=2",  # an unknown key
    "",
]


def parsed(parser, schema, query: str, **options):
    """(the arguments, or the HTTP status and messages of the error) as the parser gives them for the query."""
    app = Flask(__name__)
    with app.test_request_context(f"/?{query}"):
        from flask import request

        try:
            return "arguments", parser.parse(schema, request, location="query", **options)
        except HTTPException as error:
            return "error", error.code, error.data["messages"]


@pytest.mark.parametrize("options", [{}, {"unknown": RAISE}], ids=["webargs-unknown", "unknown-raise"])
@pytest.mark.parametrize("schema", [Listing(), Lenient(), InboxQuerySchema()], ids=["listing", "lenient", "inbox"])
@pytest.mark.parametrize("query", QUERIES)
def test_a_query_string_parses_as_webargs_reads_it(schema, query, options):
    assert parsed(_SchemaOnceParser(), schema, query, **options) == parsed(FlaskParser(), schema, query, **options)


def test_the_cases_differ_from_each_other():
    """The cases above reach each kind of outcome, so the comparison is not between empty answers."""
    outcomes = [parsed(FlaskParser(), Listing(), query, unknown=RAISE) for query in QUERIES]
    assert ("arguments", {"page_size": 10, "tags": ["a", "b"], "status": "completed", "flagged": False}) in outcomes
    assert ("arguments", {"page_size": 10, "status": "open", "flagged": False}) in outcomes
    errors = [outcome[2]["query"] for outcome in outcomes if outcome[0] == "error"]
    assert {"page-size"} <= {key for messages in errors for key in messages}
    assert any("surprise" in messages for messages in errors)
    assert any("status" in messages for messages in errors)
