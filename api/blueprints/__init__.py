"""One module per resource; every module exposing `blp` is registered by the app factory.

Each module builds its `blp` from `Blueprint` below: flask-smorest's, except that a schema given to
`@blp.arguments` as a class is instantiated once, not on every request (webargs builds a new instance of a
schema class per call, and building one deep-copies all of its fields: about 4 % of the API's CPU). Schemas hold
no per-request state, so one instance serves every request and thread. A JSON body is read by
bpm.json_text: the values webargs' own reading gives, in less CPU. A query string is read into a dict of the
keys it has, with the values webargs' MultiDictProxy gives for them.
"""

from __future__ import annotations

import functools

import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict

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

    def load_querystring(self, req, schema):
        """The query's values as MultiDictProxy gives them (all of a key's values for a field that takes several,
        else its first), in a dict of the keys the query has. The proxy answered each field the query left out
        through werkzeug's MultiDict, which raises and catches an HTTP exception per missing key: about a tenth of
        an inbox page's CPU (BENCHMARKS.md, "Engine floor vs server", eighteenth round)."""
        args = req.args
        if not args:
            return {}
        several = _keys_taking_several(schema, tuple(self.KNOWN_MULTI_FIELDS))
        return {key: args.getlist(key) if key in several else args[key] for key in args}

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            text = data.decode("utf-8")  # as webargs decodes it
        except UnicodeDecodeError:
            return core.parse_json(data)  # raises webargs' error for it
        return json_text.loads(text)


@functools.lru_cache(maxsize=256)  # the schemas of @blp.arguments are built once (see _SchemaOnceParser)
def _keys_taking_several(schema, known_multi_fields: tuple[type, ...]) -> frozenset[str]:
    """The keys of the schema's fields that take a repeated query key as a list (webargs' MultiDictProxy's rule)."""
    return frozenset(MultiDictProxy(MultiDict(), schema, known_multi_fields).multiple_keys)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = _SchemaOnceParser()
