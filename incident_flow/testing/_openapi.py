"""Spec loading, Swagger 2.0 → OpenAPI 3.0 conversion and example generation for `vendor_api`.

Nothing here validates anything: validation is openapi-core's (requests and responses), which
checks schemas with jsonschema. This module only

- converts a Swagger 2.0 description into an OpenAPI 3.0 one, for the structural parts only
  (`swagger2_to_openapi3`); no well-kept converter is published on PyPI (the maintained ones,
  such as swagger2openapi, are npm tools);
- loads a description once per file per process (`load_spec`);
- builds small example values from a schema (`example_for`), which `vendor_api` checks with
  openapi-core before serving them.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HTTP_METHODS",
    "LoadedSpec",
    "Operation",
    "example_for",
    "load_spec",
    "resolve",
    "spec_from_document",
    "string_for_pattern",
    "swagger2_to_openapi3",
]

#: The HTTP methods an OpenAPI path item may describe.
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"

# Keywords of a Swagger 2.0 non-body parameter that belong to its schema in OpenAPI 3.0.
_PARAM_SCHEMA_KEYS = (
    "type",
    "format",
    "items",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
)

# Swagger 2.0 collectionFormat → OpenAPI 3.0 (style, explode), by location.
_COLLECTION_FORMATS: dict[str, tuple[str, bool]] = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
    "tsv": ("form", False),  # OpenAPI 3.0 has no tab-delimited style; the closest is csv
}


# --------------------------------------------------------------------------------------------
# Swagger 2.0 → OpenAPI 3.0
# --------------------------------------------------------------------------------------------


def _rewrite_ref(ref: str) -> str:
    for old, new in (
        ("#/definitions/", "#/components/schemas/"),
        ("#/parameters/", "#/components/parameters/"),
        ("#/responses/", "#/components/responses/"),
    ):
        if ref.startswith(old):
            return new + ref[len(old) :]
    return ref


def _convert_schema(schema: Any) -> Any:
    """Convert one Swagger 2.0 schema object (recursively) into an OpenAPI 3.0 one.

    - `$ref`s to `#/definitions/…` point to `#/components/schemas/…`;
    - `type: file` becomes `type: string, format: binary`;
    - `x-nullable: true` becomes `nullable: true`;
    - a list of types (a JSON Schema draft-4 form some descriptions use) becomes the one
      non-null type with `nullable: true`, or an `anyOf` of the types;
      `type: "null"` alone becomes `nullable: true, enum: [null]`;
    - a list under `items` without `type: array` (Slack's description uses it to mean "one of
      these") becomes `anyOf`; with `type: array` it becomes `items: {anyOf: [...]}`;
    - a Swagger 2.0 `discriminator` (a property name) is kept as `x-discriminator`: OpenAPI
      3.0's discriminator only works with `oneOf`/`anyOf`, which Swagger 2.0 subtypes do not
      use, so each value is validated against the schema it is declared with, as in Swagger 2.0.
    """
    if isinstance(schema, list):
        return [_convert_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = _rewrite_ref(value)
        elif key in ("properties", "patternProperties", "definitions"):
            out[key] = (
                {name: _convert_schema(sub) for name, sub in value.items()}
                if isinstance(value, dict)
                else value
            )
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _convert_schema(value)
        elif key == "x-nullable":
            if value is True:
                out["nullable"] = True
        elif key == "discriminator" and isinstance(value, str):
            out["x-discriminator"] = value
        else:
            out[key] = value
    if out.get("type") == "file":
        out["type"] = "string"
        out["format"] = "binary"
    types = out.get("type")
    if isinstance(types, list):
        del out["type"]
        concrete = [t for t in types if t != "null"]
        if len(concrete) < len(types):
            out["nullable"] = True
        if len(concrete) == 1:
            out["type"] = concrete[0]
        elif concrete:
            out["anyOf"] = [{"type": t} for t in concrete]
    elif types == "null":
        del out["type"]
        out["nullable"] = True
        out["enum"] = [None]
    items = out.get("items")
    if isinstance(items, list):
        if out.get("type") == "array":
            out["items"] = {"anyOf": items}
        else:
            del out["items"]
            out.setdefault("anyOf", items)
    return out


def _param_schema(param: Mapping[str, Any]) -> dict[str, Any]:
    schema = {key: param[key] for key in _PARAM_SCHEMA_KEYS if key in param}
    if "items" in schema:
        schema["items"] = _param_schema(schema["items"])
    return _convert_schema(schema)  # type: ignore[no-any-return]


def _convert_parameter(param: Mapping[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 query/path/header parameter as an OpenAPI 3.0 parameter object."""
    out: dict[str, Any] = {
        key: param[key]
        for key in ("name", "in", "description", "required", "allowEmptyValue")
        if key in param
    }
    out.update({key: value for key, value in param.items() if key.startswith("x-")})
    if param.get("in") == "path":
        out["required"] = True
    out["schema"] = _param_schema(param)
    collection = param.get("collectionFormat")
    if param.get("type") == "array" and collection in _COLLECTION_FORMATS:
        style, explode = _COLLECTION_FORMATS[collection]
        if param.get("in") in ("path", "header"):
            style = "simple"
        out["style"] = style
        out["explode"] = explode
    return out


def _convert_response(response: Mapping[str, Any], produces: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": response.get("description", "")}
    out.update({key: value for key, value in response.items() if key.startswith("x-")})
    headers = response.get("headers")
    if isinstance(headers, dict) and headers:
        out["headers"] = {
            name: {
                **({"description": header["description"]} if "description" in header else {}),
                "schema": _param_schema(header),
            }
            for name, header in headers.items()
        }
    raw_examples = response.get("examples")
    examples: Mapping[str, Any] = raw_examples if isinstance(raw_examples, dict) else {}
    if "schema" in response:
        schema = _convert_schema(response["schema"])
        content: dict[str, Any] = {}
        for media_type in produces:
            entry: dict[str, Any] = {"schema": schema}
            if media_type in examples:
                entry["example"] = examples[media_type]
            content[media_type] = entry
        out["content"] = content
    return out


def _pointer(document: Any, ref: str) -> Any:
    """The value a local JSON pointer (`#/a/b/0`) designates in `document`."""
    from urllib.parse import unquote

    target = document
    for raw in ref[2:].split("/") if len(ref) > 2 else []:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        target = target[int(part)] if isinstance(target, list) else target[part]
    return target


def _resolve_local(doc: Mapping[str, Any], obj: Any) -> Any:
    """Follow `$ref`s to `#/parameters/…` or `#/responses/…` of a Swagger 2.0 document."""
    seen = 0
    while isinstance(obj, dict) and isinstance(obj.get("$ref"), str) and seen < 16:
        ref: str = obj["$ref"]
        if not ref.startswith("#/"):
            break
        obj = _pointer(doc, ref)
        seen += 1
    return obj


def _convert_operation(
    doc: Mapping[str, Any],
    operation: Mapping[str, Any],
    path_params: list[Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        key: value
        for key, value in operation.items()
        if key not in ("parameters", "responses", "consumes", "produces", "schemes", "security")
    }
    if "security" in operation:
        out["security"] = operation["security"]
    consumes: list[str] = list(operation.get("consumes") or doc.get("consumes") or [])
    produces: list[str] = list(operation.get("produces") or doc.get("produces") or [_JSON])

    # Operation parameters override path-level ones with the same (name, in).
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for raw in [*path_params, *(operation.get("parameters") or [])]:
        param = _resolve_local(doc, raw)
        merged[(param.get("name", ""), param.get("in", ""))] = param

    parameters: list[dict[str, Any]] = []
    form: list[Mapping[str, Any]] = []
    body: Mapping[str, Any] | None = None
    for param in merged.values():
        where = param.get("in")
        if where == "body":
            body = param
        elif where == "formData":
            form.append(param)
        else:
            parameters.append(_convert_parameter(param))
    if parameters:
        out["parameters"] = parameters

    if body is not None:
        media_types = [m for m in consumes if m not in (_FORM, _MULTIPART)] or [_JSON]
        schema = _convert_schema(body.get("schema", {}))
        request_body: dict[str, Any] = {
            "content": {media_type: {"schema": schema} for media_type in media_types},
        }
        if body.get("required"):
            request_body["required"] = True
        if "description" in body:
            request_body["description"] = body["description"]
        out["requestBody"] = request_body
    elif form:
        has_file = any(param.get("type") == "file" for param in form)
        properties = {}
        for param in form:
            prop = _param_schema(param)
            if "description" in param:
                prop["description"] = param["description"]
            properties[param["name"]] = prop
        form_schema: dict[str, Any] = {"type": "object", "properties": properties}
        required = [param["name"] for param in form if param.get("required")]
        if required:
            form_schema["required"] = required
        media_types = [m for m in consumes if m in (_FORM, _MULTIPART, _JSON)]
        if not media_types:
            media_types = [_MULTIPART] if has_file else [_FORM]
        content = {media_type: {"schema": form_schema} for media_type in media_types}
        if _JSON in content:
            content[_JSON] = {"schema": _json_variant(form_schema)}
        out["requestBody"] = {"content": content, **({"required": True} if required else {})}

    responses: dict[str, Any] = {}
    for status, raw_response in (operation.get("responses") or {}).items():
        if str(status).startswith("x-"):
            continue
        responses[str(status)] = _convert_response(_resolve_local(doc, raw_response), produces)
    out["responses"] = responses or {"default": {"description": ""}}
    return out


def _json_variant(form_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of a JSON body for an operation described with form parameters.

    A form field described as carrying JSON text (Slack's `blocks`, `attachments`: "a JSON-based
    array …, presented as a URL-encoded string") is sent in a JSON body as the JSON value itself,
    so there it may be an array or object as well as a string. Everything else is unchanged.
    """
    properties: dict[str, Any] = {}
    for name, prop in (form_schema.get("properties") or {}).items():
        if prop.get("type") == "string" and "JSON" in str(prop.get("description", "")):
            prop = {
                "description": prop.get("description", ""),
                "anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}],
            }
        properties[name] = prop
    return {**form_schema, "properties": properties}


def _convert_security_scheme(scheme: Mapping[str, Any]) -> dict[str, Any]:
    kind = scheme.get("type")
    description = {"description": scheme["description"]} if "description" in scheme else {}
    if kind == "basic":
        return {"type": "http", "scheme": "basic", **description}
    if kind == "apiKey":
        return {"type": "apiKey", "name": scheme["name"], "in": scheme["in"], **description}
    if kind == "oauth2":
        flow = scheme.get("flow")
        scopes = scheme.get("scopes", {})
        flows: dict[str, Any]
        if flow == "implicit":
            flows = {"implicit": {"authorizationUrl": scheme["authorizationUrl"], "scopes": scopes}}
        elif flow == "password":
            flows = {"password": {"tokenUrl": scheme["tokenUrl"], "scopes": scopes}}
        elif flow == "application":
            flows = {"clientCredentials": {"tokenUrl": scheme["tokenUrl"], "scopes": scopes}}
        else:  # accessCode
            flows = {
                "authorizationCode": {
                    "authorizationUrl": scheme["authorizationUrl"],
                    "tokenUrl": scheme["tokenUrl"],
                    "scopes": scopes,
                }
            }
        return {"type": "oauth2", "flows": flows, **description}
    return dict(scheme)


def swagger2_to_openapi3(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a Swagger 2.0 description into an OpenAPI 3.0.3 one (structural parts only).

    What is converted:

    - `host`, `basePath` and `schemes` → `servers`;
    - query, path and header parameters → parameter objects with a `schema`
      (`collectionFormat` → `style`/`explode`); `$ref`s to `#/parameters/…` are inlined;
    - a `body` parameter → `requestBody` for each media type of `consumes` (JSON if none);
    - `formData` parameters → one object schema in `requestBody`, for each of
      `application/x-www-form-urlencoded`, `multipart/form-data` and `application/json` that
      `consumes` lists (form-urlencoded, or multipart when a parameter is a file, if it lists none);
    - response `schema` → `content` for each media type of `produces`, response `examples` →
      `content.<media type>.example`, response headers → header objects; `$ref`s to
      `#/responses/…` are inlined;
    - `definitions` → `components/schemas`, with every `$ref` rewritten and the schema fixes of
      `_convert_schema` (nullable types, `type: file`, list-valued `items`, discriminators);
    - `securityDefinitions` → `components/securitySchemes` (basic → http basic; oauth2 flows).

    Everything else (`info`, `tags`, `externalDocs`, `x-…` extensions) is copied unchanged.
    The input is not modified.
    """
    if doc.get("swagger") != "2.0":
        raise ValueError(f"not a Swagger 2.0 description (swagger: {doc.get('swagger')!r})")
    out: dict[str, Any] = {"openapi": "3.0.3", "info": copy.deepcopy(doc.get("info", {}))}
    for key in ("tags", "externalDocs"):
        if key in doc:
            out[key] = doc[key]
    out.update({key: value for key, value in doc.items() if key.startswith("x-")})

    base_path = doc.get("basePath", "") or ""
    host = doc.get("host")
    if host:
        schemes = doc.get("schemes") or ["https"]
        out["servers"] = [{"url": f"{scheme}://{host}{base_path}"} for scheme in schemes]
    elif base_path:
        out["servers"] = [{"url": base_path}]

    if "security" in doc:
        out["security"] = doc["security"]

    paths: dict[str, Any] = {}
    for path, item in (doc.get("paths") or {}).items():
        if path.startswith("x-") or not isinstance(item, dict):
            continue
        path_params = list(item.get("parameters") or [])
        new_item: dict[str, Any] = {
            key: value for key, value in item.items() if key.startswith("x-")
        }
        for method in HTTP_METHODS:
            if method in item:
                new_item[method] = _convert_operation(doc, item[method], path_params)
        paths[path] = new_item
    out["paths"] = paths

    components: dict[str, Any] = {}
    definitions = doc.get("definitions") or {}
    if definitions:
        components["schemas"] = {name: _convert_schema(s) for name, s in definitions.items()}
    security_definitions = doc.get("securityDefinitions") or {}
    if security_definitions:
        components["securitySchemes"] = {
            name: _convert_security_scheme(scheme) for name, scheme in security_definitions.items()
        }
    if components:
        out["components"] = components
    return out


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of a description: its method, path template and OpenAPI 3.0 object."""

    method: str
    """Upper-case HTTP method."""
    template: str
    """Path template as the description writes it, without the base path (`/v2/alerts`)."""
    spec: Mapping[str, Any] = field(repr=False, compare=False)
    """The (converted) OpenAPI 3.0 operation object."""
    path_item: Mapping[str, Any] = field(repr=False, compare=False)
    """The path item holding it (for path-level parameters)."""
    regex: re.Pattern[str] = field(repr=False, compare=False)
    """Matches a concrete path (without base path) and captures the path parameters."""
    literal_parts: int = field(repr=False, compare=False)
    """Number of characters outside `{…}` in the template: more means more specific."""

    @property
    def key(self) -> tuple[str, str]:
        """`(method, template)`, the key answers are configured under."""
        return (self.method, self.template)

    def parameters(self, document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Path-level and operation parameters (`$ref`s followed in `document`), the
        operation's winning on (name, in)."""
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for raw in [*self.path_item.get("parameters", []), *self.spec.get("parameters", [])]:
            param = resolve(raw, document)
            if isinstance(param, dict):
                merged[(param.get("name", ""), param.get("in", ""))] = param
        return list(merged.values())


def _template_regex(template: str) -> tuple[re.Pattern[str], int]:
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = ""
    literal = 0
    for index, part in enumerate(parts):
        if index % 2:
            name = part[1:-1]
            group = re.sub(r"\W", "_", name)
            regex += f"(?P<{group}>[^/]+)"
        else:
            regex += re.escape(part)
            literal += len(part)
    return re.compile(f"^{regex}/?$"), literal


@dataclass(frozen=True)
class LoadedSpec:
    """A description loaded once per process: the OpenAPI 3.0 document and its operations."""

    path: Path
    """The file it was read from."""
    source_version: str
    """`swagger: 2.0` or the `openapi:` version the file declares."""
    document: dict[str, Any] = field(repr=False)
    """The OpenAPI 3.0 document (converted from Swagger 2.0 when needed). Do not modify."""
    title: str
    """`info.title`."""
    base_path: str
    """The path part of the first server URL (`/api` for Slack), without a trailing slash."""
    operations: tuple[Operation, ...] = field(repr=False)
    """Every operation, most specific templates first."""
    load_seconds: float
    """Time spent reading, parsing and converting the file."""
    quirks: tuple[str, ...] = ()
    """Where the description had to be corrected to be read (see `_normalise_types`)."""

    def find(self, method: str, path: str) -> tuple[Operation | None, dict[str, str]]:
        """The operation for a concrete path (or template) relative to the base path.

        Returns `(None, {})` when no path matches and `(None, {"allowed": "GET, POST"})` when
        the path matches but the method does not.
        """
        method = method.upper()
        allowed: list[str] = []
        for operation in self.operations:
            if operation.template == path:
                if operation.method == method:
                    return operation, {}
                allowed.append(operation.method)
        if allowed:
            return None, {"allowed": ", ".join(sorted(set(allowed)))}
        for operation in self.operations:
            match = operation.regex.match(path)
            if match is None:
                continue
            if operation.method != method:
                allowed.append(operation.method)
                continue
            names = re.findall(r"\{([^}/]+)\}", operation.template)
            return operation, {name: match.group(re.sub(r"\W", "_", name)) for name in names}
        if allowed:
            return None, {"allowed": ", ".join(sorted(set(allowed)))}
        return None, {}


def _base_path(document: Mapping[str, Any]) -> str:
    from urllib.parse import urlparse

    servers = document.get("servers") or []
    if not servers:
        return ""
    url = str(servers[0].get("url", ""))
    path = urlparse(url).path if "://" in url else url
    return path.rstrip("/")


def _operations(document: Mapping[str, Any]) -> tuple[Operation, ...]:
    found: list[Operation] = []
    for template, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        regex, literal = _template_regex(template)
        for method in HTTP_METHODS:
            if isinstance(item.get(method), dict):
                found.append(
                    Operation(method.upper(), template, item[method], item, regex, literal)
                )
    # Literal templates before templated ones, then the longest literal part first.
    found.sort(key=lambda op: ("{" in op.template, -op.literal_parts))
    return tuple(found)


_SCHEMA_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
# Keys whose values are data or extensions, not schemas: not walked by `_normalise_types`.
_DATA_KEYS = frozenset({"example", "examples", "default", "enum", "securitySchemes", "x-examples"})


def _normalise_types(document: Any, quirks: list[str]) -> None:
    """Fix `type` values that are not OpenAPI 3.0 types, in place, and say where.

    `type: Object` becomes `object`; an unknown type name (Statuspage's `PartialStartDate`)
    is dropped, leaving the schema unconstrained, because openapi-core cannot validate
    against a type it does not know.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    schema_types = _SCHEMA_TYPES
    data_keys = _DATA_KEYS
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind not in schema_types:
                location = "#/" + "/".join(where)
                if kind.lower() in schema_types:
                    node["type"] = kind.lower()
                    quirks.append(f"{location}: type {kind!r} read as {kind.lower()!r}")
                else:
                    del node["type"]
                    quirks.append(f"{location}: unknown type {kind!r} ignored")
            for key, value in node.items():
                if isinstance(value, (dict, list)) and key not in data_keys and key[:2] != "x-":
                    stack.append((value, (*where, key)))
        else:
            for index, item in enumerate(node):
                if isinstance(item, (dict, list)):
                    stack.append((item, (*where, str(index))))
    quirks.sort()


@functools.lru_cache(maxsize=16)
def load_spec(path: Path) -> LoadedSpec:
    """Read a Swagger 2.0 or OpenAPI 3.0 JSON description, once per file per process.

    Swagger 2.0 files are converted with
    `swagger2_to_openapi3`.
    """
    started = time.perf_counter()
    with path.open("rb") as stream:
        raw = json.load(stream)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not an API description (top level is not an object)")
    return _build(raw, path, started)


def spec_from_document(raw: Mapping[str, Any], path: Path) -> LoadedSpec:
    """Load a description given as a dict (not cached; `raw` is not modified).

    `path` only names where it came from.
    """
    started = time.perf_counter()
    return _build(copy.deepcopy(dict(raw)), path, started)


def _build(raw: dict[str, Any], path: Path, started: float) -> LoadedSpec:
    if raw.get("swagger") == "2.0":
        source_version = "swagger 2.0"
        document = swagger2_to_openapi3(raw)
    elif str(raw.get("openapi", "")).startswith("3.0"):
        source_version = f"openapi {raw['openapi']}"
        document = raw
    else:
        version = raw.get("openapi") or raw.get("swagger")
        raise ValueError(f"{path}: unsupported description version {version!r}")
    quirks: list[str] = []
    _normalise_types(document, quirks)
    return LoadedSpec(
        path=path,
        source_version=source_version,
        document=document,
        title=str(document.get("info", {}).get("title", path.name)),
        base_path=_base_path(document),
        operations=_operations(document),
        load_seconds=time.perf_counter() - started,
        quirks=tuple(quirks),
    )


# --------------------------------------------------------------------------------------------
# Example generation
# --------------------------------------------------------------------------------------------

_FORMAT_EXAMPLES = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uri-reference": "https://example.com/",
    "iri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
    "byte": "eA==",
    "binary": "x",
    "password": "x",
}


def string_for_pattern(pattern: str) -> str | None:
    """A short string matching the regular expression, or None when none could be built.

    Works on Python's own parse of the pattern: literals, classes (first member), repeats
    (minimum count), groups and alternatives (first branch). The result is checked with
    `re.search` before it is returned.
    """
    try:
        import re._parser as sre_parse  # type: ignore[import-not-found,unused-ignore]
        from re import _constants as sre  # type: ignore[attr-defined,unused-ignore]

        parsed = sre_parse.parse(pattern)
    except Exception:  # pragma: no cover - a pattern Python cannot read
        return None

    def category(name: Any) -> str:
        text = str(name)
        if "DIGIT" in text and "NOT" not in text:
            return "0"
        if "SPACE" in text and "NOT" not in text:
            return " "
        return "a"

    def emit(items: Any) -> str:
        out = []
        for op, arg in items:
            if op is sre.LITERAL:
                out.append(chr(arg))
            elif op is sre.NOT_LITERAL:
                out.append("a" if chr(arg) != "a" else "b")
            elif op is sre.ANY:
                out.append("a")
            elif op is sre.IN:
                out.append(emit_in(arg))
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
                low, _high, sub = arg
                out.append(emit(sub) * max(int(low), 0))
            elif op is sre.SUBPATTERN:
                out.append(emit(arg[-1]))
            elif op is sre.BRANCH:
                out.append(emit(arg[1][0]))
            elif op is sre.CATEGORY:
                out.append(category(arg))
            elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT, sre.GROUPREF):
                continue
            else:
                out.append("a")
        return "".join(out)

    def emit_in(members: Any) -> str:
        negate = False
        for op, arg in members:
            if op is sre.NEGATE:
                negate = True
                continue
            if negate:
                return "a" if "a" not in str(members) else "~"
            if op is sre.LITERAL:
                return chr(arg)
            if op is sre.RANGE:
                return chr(arg[0])
            if op is sre.CATEGORY:
                return category(arg)
        return "a"

    try:
        text = emit(parsed)
    except Exception:  # pragma: no cover - an unusual construct
        return None
    return text if re.search(pattern, text) else None


class _Resolver:
    """Follows local `$ref`s (`#/…`) inside one document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def resolve(self, schema: Any) -> Any:
        hops = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and hops < 32:
            ref: str = schema["$ref"]
            if not ref.startswith("#"):
                return {}
            schema = _pointer(self.document, ref)
            hops += 1
        return schema


def resolve(schema: Any, document: Mapping[str, Any]) -> Any:
    """`schema` with local `$ref`s (`#/components/schemas/…`) followed."""
    return _Resolver(document).resolve(schema)


def _iter_alternatives(schema: Mapping[str, Any]) -> Iterator[Any]:
    for key in ("oneOf", "anyOf"):
        yield from schema.get(key) or []


def example_for(
    schema: Any,
    document: Mapping[str, Any],
    *,
    use_examples: bool = True,
    choice: int = 0,
) -> Any:
    """A small value valid under an OpenAPI 3.0 schema, deterministically.

    With `use_examples`, a schema's `example` (or its `default`) is used when present, and
    optional properties that have an `example` are included. Otherwise: required properties
    only, the first `enum` value, a string of the right `format` or `pattern`, the minimum of
    a number, `minItems` items of an array, and the alternative numbered `choice` (modulo
    their count) of a `oneOf`/`anyOf`. The caller validates the result.
    """
    resolver = _Resolver(document)
    return _example(schema, resolver, use_examples, choice, 0)


def _example(schema: Any, resolver: _Resolver, use_examples: bool, choice: int, depth: int) -> Any:
    schema = resolver.resolve(schema)
    if not isinstance(schema, dict) or depth > 24:
        return {}
    if use_examples and "example" in schema:
        return copy.deepcopy(schema["example"])
    if "default" in schema and (use_examples or schema.get("enum") is None):
        return copy.deepcopy(schema["default"])
    if schema.get("enum"):
        values = [value for value in schema["enum"] if value is not None]
        return copy.deepcopy(values[0] if values else None)
    if "allOf" in schema:
        merged: Any = None
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        for part in [*schema["allOf"], rest]:
            value = _example(part, resolver, use_examples, choice, depth + 1)
            if isinstance(merged, dict) and isinstance(value, dict):
                merged = {**merged, **value}
            elif merged is None or (merged == {} and value != {}):
                merged = value
        return merged
    alternatives = list(_iter_alternatives(schema))
    if alternatives and "type" not in schema and "properties" not in schema:
        picked = alternatives[choice % len(alternatives)]
        return _example(picked, resolver, use_examples, choice, depth + 1)
    kind = schema.get("type")
    if kind is None:
        if "properties" in schema or "required" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
        elif schema.get("nullable"):
            return None
        else:
            return {}
    if kind == "object":
        properties = schema.get("properties") or {}
        out: dict[str, Any] = {}
        for name in schema.get("required") or []:
            sub = properties.get(name)
            if sub is None:
                extra = schema.get("additionalProperties")
                sub = extra if isinstance(extra, dict) else {"type": "string"}
            out[name] = _example(sub, resolver, use_examples, choice, depth + 1)
        if use_examples:
            # Optional properties that carry an example make a more realistic answer (an `id`).
            for name, sub in properties.items():
                resolved = resolver.resolve(sub)
                if name not in out and isinstance(resolved, dict) and "example" in resolved:
                    out[name] = copy.deepcopy(resolved["example"])
        if alternatives:
            extra_value = _example(
                alternatives[choice % len(alternatives)], resolver, use_examples, choice, depth + 1
            )
            if isinstance(extra_value, dict):
                out.update(extra_value)
        return out
    if kind == "array":
        count = int(schema.get("minItems", 0))
        item = schema.get("items", {})
        values = [_example(item, resolver, use_examples, choice, depth + 1) for _ in range(count)]
        if schema.get("uniqueItems") and count > 1:
            values = [f"x{index}" for index in range(count)]
        return values
    if kind == "string":
        text: str | None = None
        if "pattern" in schema:
            text = string_for_pattern(str(schema["pattern"]))
        if text is None:
            text = _FORMAT_EXAMPLES.get(str(schema.get("format", "")), "x")
        minimum = int(schema.get("minLength", 0))
        if len(text) < minimum:
            text = text + "x" * (minimum - len(text))
        maximum = schema.get("maxLength")
        if maximum is not None:
            text = text[: int(maximum)]
        return text
    if kind in ("integer", "number"):
        low = schema.get("minimum")
        high = schema.get("maximum")
        number: float = 0 if low is None else low
        if low is not None and schema.get("exclusiveMinimum") is True:
            number = low + 1
        if high is not None and number > high:
            number = high
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return False
    return None
