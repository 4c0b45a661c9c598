"""Upload BPMN and read deployed process definitions and their versions."""

from flask import request
from flask.views import MethodView

from api.auth import current_actor, require, uow
from api.blueprints import Blueprint
from api.schemas import DefinitionDetailSchema, DefinitionSchema, DeploymentSchema, UploadSchema
from bpm.domain.errors import ValidationFailed
from bpm.services import definitions

blp = Blueprint("process-definitions", __name__, url_prefix="/api/v1/process-definitions",
                description="Deploy BPMN; each upload of a process key makes a new version")


@blp.route("")
class Definitions(MethodView):
    @blp.response(200, DefinitionSchema(many=True))
    def get(self):
        """List the newest version of every process definition."""
        current_actor()
        unit = uow()
        with unit:
            return definitions.list_latest(unit)

    @blp.arguments(UploadSchema, location="files")
    @blp.response(201, DeploymentSchema)
    @blp.alt_response(413, description="The file is larger than the upload limit")
    @blp.alt_response(422, description="The BPMN is invalid: `problems` name element id, type and line")
    @blp.doc(parameters=[{"in": "query", "name": "force", "schema": {"type": "boolean"}, "required": False,
                          "description": "deploy even if a saved scenario of the key fails"}])
    def post(self, _files):
        """Upload a BPMN file (multipart field `file`, or the XML as the request body)."""
        actor = require("deploy")
        data, filename = _uploaded_bpmn()
        force = request.args.get("force", "").lower() in ("1", "true", "yes")  # skip saved scenarios
        rows = definitions.deploy(definitions.DeployBpmn(data, filename, actor.username, force), uow())
        return {"definitions": rows}


def _uploaded_bpmn() -> tuple[bytes, str]:
    upload = request.files.get("file")
    if upload is not None:
        return upload.read(), upload.filename or "upload.bpmn"
    if request.content_type and "xml" in request.content_type and request.data:
        return request.data, "upload.bpmn"
    raise ValidationFailed("no BPMN file in the request",
                           {"file": ["send the BPMN as multipart field 'file' or as an XML body"]})


@blp.route("/<string:key>")
class Definition(MethodView):
    @blp.response(200, DefinitionDetailSchema)
    def get(self, key):
        """The newest version of a process definition."""
        current_actor()
        unit = uow()
        with unit:
            return definitions.latest_definition(unit, key)


@blp.route("/<string:key>/versions")
class Versions(MethodView):
    @blp.response(200, DefinitionSchema(many=True))
    def get(self, key):
        """Every version of a process definition, oldest first."""
        current_actor()
        unit = uow()
        with unit:
            return definitions.list_versions(unit, key)


@blp.route("/<string:key>/versions/<int:version>")
class Version(MethodView):
    @blp.response(200, DefinitionDetailSchema)
    def get(self, key, version):
        """One version of a process definition, with its BPMN XML."""
        current_actor()
        unit = uow()
        with unit:
            return definitions.get_definition(unit, key, version)
