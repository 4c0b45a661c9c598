"""Form definitions (form-js / Camunda Forms JSON) for the designer's form editor: list, read and save by key.

A form saved here becomes the key's newest version (stored in the database) and from then on is what tasks with
that camunda:formKey show and are validated against; a key nobody saved is served from the shipped file in
forms/ (source "shipped"). Designers and admins only (permission `deploy`). A saved form is checked first: a JSON
object with a list of components, each with a type; input fields need a key that is unique in the form.
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import fields

from api.auth import require, uow
from api.blueprints import Blueprint
from api.schema_base import Schema
from api.schemas import UTCDateTime
from bpm.services import form_store

blp = Blueprint("forms", __name__, url_prefix="/api/v1/forms",
                description="Form definitions (form-js JSON) by form key, for the designer's form editor")


class FormSummarySchema(Schema):
    key = fields.String(metadata={"description": "the form key a user task names in camunda:formKey"})
    id = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "saved (through this API) or shipped (forms/ in the code)"})
    version = fields.Integer(allow_none=True, metadata={"description": "the saved version in use"})
    fields_count = fields.Integer(data_key="fields", metadata={"description": "input fields in the form"})
    updated_at = UTCDateTime(allow_none=True)
    saved_by = fields.String(allow_none=True)


class FormSchema(FormSummarySchema):
    schema = fields.Dict(metadata={"description": "the form-js schema"})


class FormPutSchema(Schema):
    schema = fields.Dict(required=True, metadata={"description": "the form-js schema (components, id, type)"})


@blp.route("")
class Forms(MethodView):
    @blp.response(200, FormSummarySchema(many=True))
    def get(self):
        """Every form: saved ones and the shipped forms nobody changed, by key."""
        require("deploy")
        return form_store.list_forms(uow())


@blp.route("/<string:key>")
class FormResource(MethodView):
    @blp.response(200, FormSchema)
    def get(self, key):
        """One form by key (`quote_approve` or `quote_approve.form`)."""
        require("deploy")
        return form_store.get_form(key, uow())

    @blp.arguments(FormPutSchema)
    @blp.response(200, FormSchema)
    @blp.alt_response(422, description="The form is not valid (each problem named by component)")
    def put(self, body, key):
        """Save a form under its key as its next version; checked before it is stored."""
        actor = require("deploy")
        return form_store.save_form(key, body["schema"], actor.username, uow())
