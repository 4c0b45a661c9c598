"""One module per resource; every module exposing `blp` is registered by the app factory.

Each module builds its `blp` from `Blueprint` below: flask-smorest's, except that a schema given to
`@blp.arguments` as a class is instantiated once, not on every request (webargs builds a new instance of a
schema class per call, and building one deep-copies all of its fields: about 4 % of the API's CPU). Schemas hold
no per-request state, so one instance serves every request and thread. A JSON body is read by
bpm.json_text: the values webargs' own reading gives, in less CPU.
"""

from __future__ import annotations

import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from bpm import json_text


class _SchemaOnceParser(FlaskParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._instances: dict[type, object] = {}

    def _get_schema(self, argmap, req):
        if isinstance(argmap, type):
            instance = self._instances.get(argmap)
            if instance is None:
                instance = self._instances.setdefault(argmap, super()._get_schema(argmap, req))
            return instance
        return super()._get_schema(argmap, req)

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            text = data.decode("utf-8")  # as webargs decodes it
        except UnicodeDecodeError:
            return core.parse_json(data)  # raises webargs' error for it
        return json_text.loads(text)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = _SchemaOnceParser()
