"""A local vendor API server that checks every request against the vendor's API description.

Adapter tests point an adapter (Slack, Opsgenie, PagerDuty, Statuspage, GitHub) at a
`VendorAPI`: an HTTP server on 127.0.0.1 that finds the operation a request is for in the
vendor's published description (`../shared/specs/`), validates the request (path, query,
headers, body) and answers with a response that is itself valid under the description: the one
the test configured, or one generated from the response schema.

```python
import urllib.parse, urllib.request

with VendorAPI.from_spec("slack_web_openapi_v2.json") as api:
    api.fail("POST", "/chat.postMessage", status=429, retry_after=1, times=1)
    form = urllib.parse.urlencode({"channel": "C0123456789", "text": "Search is down"})
    request = urllib.request.Request(
        api.base_url + "/chat.postMessage",  # base_url ends in Slack's base path, /api
        data=form.encode(),
        headers={"Authorization": "Bearer xoxb-1"},
    )
    ...  # the adapter under test sends it, sees the 429, waits, retries and gets a 200
    assert [r.status for r in api.requests_to("POST", "/chat.postMessage")] == [429, 200]
# leaving the block fails the test if any request was invalid (strict=True, the default)
```

**Validation** of requests and of answers is openapi-core's (which reads OpenAPI 3.x only and
checks schemas with jsonschema); this module has no schema validator of its own.

**Swagger 2.0.** The Slack and Opsgenie descriptions are Swagger 2.0. No well-kept Swagger 2.0 →
OpenAPI 3.0 converter is published on PyPI (the maintained ones are npm tools), so they are
converted once at load time by a small converter of the structural parts only,
`incident_flow.testing._openapi.swagger2_to_openapi3`: parameters, `body`/`formData` →
`requestBody` (form-urlencoded and JSON), `definitions` → `components/schemas` with `$ref`s
rewritten, response `schema` → `content`, `securityDefinitions` → `components/securitySchemes`.

**Where the server is more lenient than the descriptions**, on purpose:

- Security: an operation that requires security (or declares a required credential header, as
  Slack's `token` header) is satisfied by any `Authorization` header, a `token`, `api_key` or
  `access_token` query or form parameter, or the header or query parameter an `apiKey` scheme
  names. The credential's form is not checked. Its absence is a finding (`header.Authorization`).
- A form field that the description says carries JSON text (Slack's `blocks`, `attachments`)
  may be the JSON value itself in a JSON body, as Slack's SDK sends it.
- A schema `type` that is not an OpenAPI type is lower-cased (Statuspage's `Object`) or ignored
  (`PartialStartDate`); `LoadedSpec.quirks` lists where.

Each description is read and converted once per file per process, and openapi-core's `OpenAPI`
object is built once per description; openapi-core's own check of the description is skipped
(it takes seconds on the large files and stops at quirks that do not matter here).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

try:
    import jsonschema.exceptions
    from openapi_core import Config, OpenAPI
    from openapi_core.casting.schemas.exceptions import CastError
    from openapi_core.datatypes import RequestParameters
    from openapi_core.deserializing.exceptions import DeserializeError
    from openapi_core.deserializing.styles.exceptions import EmptyQueryParameterValue
    from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
    from openapi_core.templating.paths.exceptions import PathError
    from openapi_core.templating.responses.exceptions import ResponseNotFound
    from openapi_core.util import forcebool
    from openapi_core.validation.request.exceptions import (
        MissingRequiredParameter,
        MissingRequiredRequestBody,
        ParameterValidationError,
        RequestBodyValidationError,
    )
    from openapi_core.validation.response.exceptions import (
        DataValidationError,
        HeaderValidationError,
        MissingData,
    )
    from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
    from werkzeug.datastructures import Headers, ImmutableMultiDict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "incident_flow.testing.vendor_api needs the testing extra: "
        "pip install incident-flow[testing]"
    ) from exc

from incident_flow.errors import InvalidFieldError
from incident_flow.testing._openapi import (
    HTTP_METHODS,
    LoadedSpec,
    Operation,
    example_for,
    load_spec,
    resolve,
    spec_from_document,
)

__all__ = [
    "SPECS_DIR_ENV",
    "Answer",
    "Finding",
    "RecordedRequest",
    "SpecsNotFoundError",
    "VendorAPI",
    "default_specs_dir",
]

SPECS_DIR_ENV: Final = "INCIDENT_FLOW_SPECS_DIR"
"""Environment variable naming another folder of descriptions for `VendorAPI.from_spec`."""

_CREDENTIAL_PARAMS = ("token", "api_key", "access_token")
_JSON_TYPE = "application/json"
_FORM_TYPE = "application/x-www-form-urlencoded"


class SpecsNotFoundError(FileNotFoundError):
    """The folder of vendor API descriptions (`../shared/specs/`) or a file in it is missing."""


def default_specs_dir() -> Path:
    """Where the vendor API descriptions are: `$INCIDENT_FLOW_SPECS_DIR`, else `../shared/specs`.

    `../shared/specs` is relative to the project root (the folder holding `pyproject.toml` and
    the `incident_flow` package), so a checkout at `/work/main` reads `/work/shared/specs`.
    """
    override = os.environ.get(SPECS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "specs"


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a request: where (`body.channel`, `query.limit`) and what."""

    location: str
    """`body`, `body.<field>[.<field>…]`, `query.<name>`, `header.<name>`, `path.<name>`, or
    `operation` when no operation matches."""
    message: str
    """What is wrong, e.g. `required property missing`."""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class _CaseInsensitiveDict(Mapping[str, str]):
    """Read-only header mapping whose lookups ignore case; iteration keeps the sent spelling."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for key, value in items:
            self._items[key.lower()] = (key, value)

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received, as parsed, with the verdict of validation."""

    method: str
    """Upper-case HTTP method."""
    path: str
    """The concrete path relative to the description's base path (`/chat.postMessage`)."""
    full_path: str
    """The path as requested, base path included (`/api/chat.postMessage`)."""
    operation: str | None
    """The matched path template (`/repos/{owner}/{repo}/issues`), or None when none matched."""
    path_params: Mapping[str, str]
    """Values of the template's `{…}` parameters."""
    query: Mapping[str, str]
    """Query parameters (the last value of a repeated name); see `query_lists` for all."""
    query_lists: Mapping[str, tuple[str, ...]]
    """Every value of each query parameter, in order."""
    headers: Mapping[str, str]
    """Request headers; lookups ignore case."""
    content_type: str
    """The media type of the body without parameters (`application/json`), or `""`."""
    body: Any
    """The parsed body: a dict for JSON objects and form bodies (last value of a repeated field,
    values as sent, i.e. strings), other JSON values as parsed, text otherwise, None if empty."""
    raw_body: bytes = field(repr=False)
    """The body as received."""
    findings: tuple[Finding, ...]
    """What is wrong with the request; empty when it is valid."""
    status: int
    """The status the server answered with."""
    validation_seconds: float = field(repr=False)
    """Time spent validating the request."""

    @property
    def valid(self) -> bool:
        """Whether the request is valid under the description."""
        return not self.findings

    def describe(self) -> str:
        """`METHOD /path: finding; finding`, as `assert_all_valid` lists it."""
        problems = "; ".join(str(finding) for finding in self.findings) or "valid"
        return f"{self.method} {self.full_path}: {problems}"


@dataclass(frozen=True)
class Answer:
    """A scripted answer: status, JSON body (None: generated from the description) and headers."""

    status: int = 200
    """HTTP status."""
    json: Any = None
    """The JSON body; None means a body valid under the description for `status`."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers."""
    validate: bool = True
    """Whether the body must be valid under the description (False for injected failures)."""


@dataclass
class _Queued:
    answer: Answer
    remaining: int
    concrete: str | None


@dataclass
class _Delay:
    seconds: float
    remaining: int
    concrete: str | None


@dataclass
class _Rules:
    standing: dict[str | None, Answer] = field(default_factory=dict)
    queue: list[_Queued] = field(default_factory=list)
    delays: list[_Delay] = field(default_factory=list)


class _CoreRequest:
    """A request as openapi-core's `Request` protocol wants it."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        path_pattern: str,
        path_params: Mapping[str, str],
        query: Sequence[tuple[str, str]],
        headers: Sequence[tuple[str, str]],
        body: bytes,
        content_type: str,
    ) -> None:
        self.host_url = "http://127.0.0.1"
        self.method = method.lower()
        self.path = path
        self.path_pattern = path_pattern
        self.body: bytes | None = body or None
        self.content_type = content_type
        self.parameters = RequestParameters(
            path=dict(path_params),
            query=ImmutableMultiDict(list(query)),
            header=Headers(list(headers)),
            cookie=ImmutableMultiDict([]),
        )


class _CoreResponse:
    """A response as openapi-core's `Response` protocol wants it."""

    def __init__(self, status: int, data: bytes, content_type: str) -> None:
        self.status_code = status
        self.data = data
        self.content_type = content_type
        self.headers = Headers([("Content-Type", content_type)] if content_type else [])


class _Compiled:
    """A loaded description with its openapi-core object and generated default answers."""

    def __init__(self, spec: LoadedSpec) -> None:
        self.spec = spec
        started = time.perf_counter()
        self.app = OpenAPI.from_dict(_validation_view(spec), config=Config(spec_validator_cls=None))
        self.build_seconds = time.perf_counter() - started
        self._defaults: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.Lock()

    def default_body(self, operation: Operation, status: int) -> Any:
        """A body valid for `status` of the operation, cached; ValueError if none can be built."""
        key = (operation.method, operation.template, status)
        with self._lock:
            if key in self._defaults:
                return copy.deepcopy(self._defaults[key])
        schema = _response_schema(operation, status, self.spec.document)
        body = None if schema is None else self._generate(operation, status, schema)
        with self._lock:
            self._defaults[key] = body
        return copy.deepcopy(body)

    def failure_body(self, operation: Operation, status: int) -> Any:
        """The body of an injected failure: generated if the description has this very status,
        else Slack's `{"ok": false, "error": …}` for Slack-like answers, else `{"error": …}`."""
        responses = operation.spec.get("responses") or {}
        if str(status) in responses:
            with contextlib.suppress(ValueError):
                return self.default_body(operation, status)
        try:
            reason = HTTPStatus(status).phrase.lower().replace(" ", "_")
        except ValueError:
            reason = "error"
        if status == 429:
            reason = "ratelimited"
        success = _response_schema(operation, _first_success(operation), self.spec.document)
        if _is_slack_like(success, self.spec.document):
            return {"ok": False, "error": reason}
        return {"error": reason}

    def _generate(self, operation: Operation, status: int, schema: Any) -> Any:
        document = self.spec.document
        tried: list[tuple[Any, list[Finding]]] = []
        candidates = itertools.chain(
            _media_examples(_response_media(operation, status, document), document),
            (
                example_for(schema, document, use_examples=use_examples, choice=choice)
                for use_examples, choice in [(True, 0), (False, 0), (False, 1), (False, 2)]
            ),
        )
        for candidate in candidates:
            if status == 200 and _is_slack_like(schema, document) and isinstance(candidate, dict):
                candidate.setdefault("ok", True)
            findings = self.response_findings(operation, status, candidate)
            if not findings:
                return candidate
            tried.append((candidate, findings))
        problems = "; ".join(str(f) for f in tried[-1][1])
        raise ValueError(
            f"could not build a valid {status} answer for {operation.method} "
            f"{operation.template} in {self.spec.title} ({problems}); "
            "configure one with VendorAPI.respond()"
        )

    def response_findings(self, operation: Operation, status: int, body: Any) -> list[Finding]:
        """What is wrong with `body` as the `status` answer of the operation."""
        request = _CoreRequest(
            method=operation.method,
            path=self.spec.base_path + operation.template,
            path_pattern=self.spec.base_path + operation.template,
            path_params={},
            query=[],
            headers=[],
            body=b"",
            content_type="",
        )
        data = b"" if body is None else json.dumps(body).encode()
        content_type = "" if body is None else _JSON_TYPE
        response = _CoreResponse(status, data, content_type)
        findings: list[Finding] = []
        for error in self.app.iter_response_errors(request, response):
            findings.extend(_findings_from_error(error))
        return findings


def _is_slack_like(schema: Any, document: Mapping[str, Any]) -> bool:
    """Whether a response schema has Slack's `ok` property."""
    schema = resolve(schema, document)
    return isinstance(schema, dict) and "ok" in (schema.get("properties") or {})


def _response_media(
    operation: Operation, status: int, document: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The JSON media type object of the operation's answer for `status`, if it has one."""
    responses = operation.spec.get("responses") or {}
    response = resolve(
        responses.get(str(status))
        or responses.get(f"{str(status)[0]}XX")
        or responses.get("default")
        or {},
        document,
    )
    content = response.get("content") or {} if isinstance(response, dict) else {}
    for media_type, entry in content.items():
        entry = resolve(entry, document)
        if "json" in media_type and isinstance(entry, dict) and "schema" in entry:
            return entry
    return None


def _response_schema(operation: Operation, status: int, document: Mapping[str, Any]) -> Any:
    """The JSON schema of the operation's answer for `status` (None: no JSON body)."""
    media = _response_media(operation, status, document)
    return None if media is None else media["schema"]


def _media_examples(media: Mapping[str, Any] | None, document: Mapping[str, Any]) -> list[Any]:
    """The examples a media type object gives (`example`, then each of `examples`)."""
    if media is None:
        return []
    found = [copy.deepcopy(media["example"])] if "example" in media else []
    for example in (media.get("examples") or {}).values():
        example = resolve(example, document)
        if isinstance(example, dict) and "value" in example:
            found.append(copy.deepcopy(example["value"]))
    return found


def _first_success(operation: Operation) -> int:
    """The operation's first 2xx status, else 200."""
    codes = sorted(
        int(code)
        for code in (operation.spec.get("responses") or {})
        if str(code).isdigit() and 200 <= int(code) < 300
    )
    return codes[0] if codes else 200


def _is_credential_header(param: Mapping[str, Any]) -> bool:
    return param.get("in") == "header" and str(param.get("name", "")).lower() in (
        "authorization",
        *_CREDENTIAL_PARAMS,
    )


def _validation_view(spec: LoadedSpec) -> dict[str, Any]:
    """The document openapi-core validates against: servers reduced to the base path, security
    and credential header parameters removed (checked by `VendorAPI` itself, see the module doc).
    Schemas are shared with `spec.document`, not copied."""
    document = spec.document
    view = {key: value for key, value in document.items() if key not in ("servers", "security")}
    view["servers"] = [{"url": spec.base_path or "/"}]
    paths: dict[str, Any] = {}
    for template, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            paths[template] = item
            continue
        new_item: dict[str, Any] = {}
        for key, value in item.items():
            if key == "servers":
                continue
            if key == "parameters":
                value = [p for p in value if not _is_credential_header(resolve(p, document))]
            elif key in HTTP_METHODS and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in ("security", "servers")}
                if "parameters" in value:
                    value["parameters"] = [
                        p
                        for p in value["parameters"]
                        if not _is_credential_header(resolve(p, document))
                    ]
            new_item[key] = value
        paths[template] = new_item
    view["paths"] = paths
    return view


@functools.lru_cache(maxsize=16)
def _compiled_for(path: Path) -> _Compiled:
    return _Compiled(load_spec(path))


# --------------------------------------------------------------------------------------------
# Findings from openapi-core errors
# --------------------------------------------------------------------------------------------


def _join(base: str, parts: Iterable[Any]) -> str:
    out = base
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _schema_findings(base: str, errors: Iterable[Exception]) -> list[Finding]:
    findings: list[Finding] = []
    for error in errors:
        if not isinstance(error, jsonschema.exceptions.ValidationError):
            findings.append(Finding(base, str(error)))
            continue
        if error.context:
            best = jsonschema.exceptions.best_match(error.context)
            if best is not None:
                error = best
        location = _join(base, error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    findings.append(Finding(_join(location, [name]), "required property missing"))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set((error.schema or {}).get("properties") or {})
            extra = [name for name in error.instance if name not in known]
            if extra:
                findings.extend(
                    Finding(_join(location, [name]), "property not allowed by the description")
                    for name in extra
                )
                continue
        message = error.message
        if len(message) > 300:
            message = message[:297] + "..."
        findings.append(Finding(location, message))
    return findings


def _findings_from_error(error: Exception, where: str = "body") -> list[Finding]:
    """Turn one openapi-core error into findings naming the field at fault."""
    if isinstance(error, MissingRequiredParameter):
        return [Finding(f"{error.location}.{error.name}", "required parameter missing")]
    if isinstance(error, ParameterValidationError):
        location = f"{error.location}.{error.name}"
        cause = error.__cause__
        if isinstance(cause, InvalidSchemaValue):
            return _schema_findings(location, cause.schema_errors)
        if isinstance(cause, CastError):
            return [Finding(location, f"{cause.value!r} is not a valid {cause.type}")]
        if isinstance(cause, EmptyQueryParameterValue):
            return [Finding(location, "empty value")]
        return [Finding(location, str(cause or error))]
    if isinstance(error, MissingRequiredRequestBody):
        return [Finding("body", "required request body missing")]
    if isinstance(error, (RequestBodyValidationError, DataValidationError)):
        cause = error.__cause__
        if isinstance(error, MissingData):
            return [Finding(where, "body missing")]
        if isinstance(cause, InvalidSchemaValue):
            return _schema_findings(where, cause.schema_errors)
        if isinstance(cause, MediaTypeNotFound):
            allowed = ", ".join(cause.availableMimetypes)
            return [
                Finding(
                    "header.Content-Type",
                    f"content type {cause.mimetype!r} not accepted (accepted: {allowed})",
                )
            ]
        if isinstance(cause, CastError):
            return [Finding(where, f"{cause.value!r} is not a valid {cause.type}")]
        if isinstance(cause, DeserializeError):
            return [Finding(where, f"cannot be read: {cause}")]
        return [Finding(where, str(cause or error))]
    if isinstance(error, HeaderValidationError):
        return [Finding(f"header.{getattr(error, 'name', '')}", str(error.__cause__ or error))]
    if isinstance(error, ResponseNotFound):
        return [Finding("status", f"status {error.http_status} not described")]
    if isinstance(error, PathError):
        return [Finding("operation", str(error))]
    return [Finding(where, f"{type(error).__name__}: {error.__cause__ or error}")]


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def _dispatch(self) -> None:
        try:
            self.server.api._handle(self)
        except Exception as error:  # recorded, so that the test fails rather than hangs
            self.server.api._crashed(self, error)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, api: VendorAPI) -> None:
        self.api = api
        super().__init__(("127.0.0.1", 0), _Handler)


class VendorAPI:
    """A local HTTP server that validates requests against a vendor's API description.

    Use it as a context manager: the server starts on entry (on a free port of 127.0.0.1) and
    stops on exit.

    Args:
        spec: A description file (Swagger 2.0 or OpenAPI 3.0, JSON), or an already-loaded
            description as a dict. Files are read and converted once per process.
        strict: If true (the default), leaving the `with` block calls `assert_all_valid`, so
            an invalid request fails the test even if the adapter swallowed the 400.
    """

    def __init__(self, spec: str | os.PathLike[str] | Mapping[str, Any], *, strict: bool = True):
        if isinstance(spec, Mapping):
            self._compiled = _Compiled(spec_from_document(spec, Path("<dict>")))
        else:
            path = Path(spec).resolve()
            if not path.is_file():
                raise SpecsNotFoundError(f"API description not found: {path}")
            self._compiled = _compiled_for(path)
        self.strict = strict
        """Whether leaving the `with` block asserts that every request was valid."""
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str], _Rules] = {}
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def from_spec(
        cls, name: str, *, specs_dir: str | os.PathLike[str] | None = None, strict: bool = True
    ) -> VendorAPI:
        """A server for the description `name` in `specs_dir` (default: `default_specs_dir()`).

        Raises:
            SpecsNotFoundError: the folder or the file is missing; the message says where it
                was looked for and how to point elsewhere.
        """
        folder = Path(specs_dir) if specs_dir is not None else default_specs_dir()
        if not folder.is_dir():
            raise SpecsNotFoundError(
                f"vendor API descriptions folder not found: {folder} (the tests read them from "
                f"../shared/specs/ beside the project root; set {SPECS_DIR_ENV} to use another "
                "folder)"
            )
        path = folder / name
        if not path.is_file():
            available = ", ".join(sorted(p.name for p in folder.glob("*.json"))) or "none"
            raise SpecsNotFoundError(
                f"vendor API description {name!r} not found in {folder} (available: {available})"
            )
        return cls(path, strict=strict)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> VendorAPI:
        """Start serving (the `with` statement does this); returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"VendorAPI {self.title}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; requests being delayed are answered at once."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> VendorAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        if self.strict and exc_type is None:
            self.assert_all_valid()

    # ---------------------------------------------------------------- addresses

    @property
    def spec(self) -> LoadedSpec:
        """The loaded description (OpenAPI 3.0 document, operations, load time, quirks)."""
        return self._compiled.spec

    @property
    def title(self) -> str:
        """The description's `info.title`."""
        return self._compiled.spec.title

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`, without the description's base path."""
        if self._server is None:
            raise RuntimeError("VendorAPI is not running: use it in a with statement")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """`url` plus the description's base path (`http://127.0.0.1:<port>/api` for Slack)."""
        return self.url + self._compiled.spec.base_path

    # ---------------------------------------------------------------- scripting answers

    def _target(self, method: str, path: str) -> tuple[Operation, str | None]:
        """The operation for a template or concrete path, and the concrete path (or None)."""
        spec = self._compiled.spec
        operation, _ = spec.find(method, path)
        if operation is None and spec.base_path and path.startswith(spec.base_path + "/"):
            path = path[len(spec.base_path) :]
            operation, _ = spec.find(method, path)
        if operation is None:
            raise InvalidFieldError(
                f"no operation {method.upper()} {path} in {spec.title}; use a path of the "
                "description (a template such as /pages/{page_id}/incidents, or a concrete path)",
                field="path",
            )
        return operation, None if operation.template == path else path

    def _check_answer(self, operation: Operation, answer: Answer) -> None:
        if not answer.validate:
            return
        findings = self._compiled.response_findings(
            operation,
            answer.status,
            answer.json
            if answer.json is not None
            else self._compiled.default_body(operation, answer.status),
        )
        if findings:
            problems = "; ".join(str(finding) for finding in findings)
            raise InvalidFieldError(
                f"answer {answer.status} for {operation.method} {operation.template} is not "
                f"valid under {self.title}: {problems}; start from example_response()",
                field="json",
            )

    def respond(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Configure the answer to an operation.

        Args:
            method: HTTP method.
            path: A path template of the description (`/repos/{owner}/{repo}/issues`), which
                configures every request to the operation, or a concrete path
                (`/repos/acme/web/issues`), which configures only requests to that path. The
                description's base path may be included or not.
            status: HTTP status.
            json: The body; None means one generated from the description.
            headers: Extra response headers.
            times: Answer this many requests so, then fall back to what was configured before
                (None: from now on).

        Raises:
            InvalidFieldError: no such operation, or the body is not valid under the
                description's response schema for `status` (the message names the field).
        """
        operation, concrete = self._target(method, path)
        answer = Answer(status=status, json=json, headers=dict(headers or {}))
        self._check_answer(operation, answer)
        self._add(operation, concrete, answer, times)

    def respond_sequence(self, method: str, path: str, answers: Iterable[Answer]) -> None:
        """Answer the next requests to an operation with `answers`, one each, in order.

        Answers with `validate=True` are checked as in `respond`. After the last, the standing
        answer (or the generated default) resumes.
        """
        operation, concrete = self._target(method, path)
        listed = list(answers)
        for answer in listed:
            self._check_answer(operation, answer)
        for answer in listed:
            self._add(operation, concrete, answer, 1)

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 503,
        retry_after: float | None = None,
        times: int = 1,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Inject a failure (429, 5xx…) for the next `times` requests to an operation.

        The body is `json` if given, else one generated from the description for `status` if it
        describes it (or a `default` answer), else `{"error": "<reason>"}`. It is not validated.
        `retry_after` sets the `Retry-After` header (seconds).
        """
        operation, concrete = self._target(method, path)
        extra = dict(headers or {})
        if retry_after is not None:
            seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
            extra["Retry-After"] = str(seconds)
        answer = Answer(status=status, json=json, headers=extra, validate=False)
        self._add(operation, concrete, answer, times)

    def delay(self, method: str, path: str, *, seconds: float, times: int = 1) -> None:
        """Wait `seconds` before answering the next `times` requests to an operation."""
        operation, concrete = self._target(method, path)
        with self._lock:
            rules = self._rules.setdefault(operation.key, _Rules())
            rules.delays.append(_Delay(seconds, times, concrete))

    def _add(
        self, operation: Operation, concrete: str | None, answer: Answer, times: int | None
    ) -> None:
        with self._lock:
            rules = self._rules.setdefault(operation.key, _Rules())
            if times is None:
                rules.standing[concrete] = answer
            elif times > 0:
                rules.queue.append(_Queued(answer, times, concrete))

    def response_findings(self, method: str, path: str, status: int, json: Any) -> list[Finding]:
        """What is wrong with `json` as the `status` answer of an operation (empty: valid)."""
        operation, _ = self._target(method, path)
        return self._compiled.response_findings(operation, status, json)

    def example_response(self, method: str, path: str, status: int | None = None) -> Any:
        """The body the server answers with by default (a fresh copy, to edit and `respond` with).

        `status` defaults to the operation's first 2xx status.
        """
        operation, _ = self._target(method, path)
        return self._compiled.default_body(operation, status or _first_success(operation))

    def reset(self) -> None:
        """Forget recorded requests and every configured answer, failure and delay."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()

    # ---------------------------------------------------------------- recorded requests

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Requests to one operation (path template) or one concrete path, in order."""
        method = method.upper()
        spec = self._compiled.spec
        if spec.base_path and path.startswith(spec.base_path + "/"):
            stripped = path[len(spec.base_path) :]
            if spec.find(method, path)[0] is None:
                path = stripped
        is_template = any(op.template == path for op in spec.operations)
        return [
            request
            for request in self.requests
            if request.method == method
            and (request.operation == path if is_template else request.path == path)
        ]

    @property
    def invalid_requests(self) -> list[RecordedRequest]:
        """The recorded requests that were not valid."""
        return [request for request in self.requests if not request.valid]

    def assert_all_valid(self) -> None:
        """Raise AssertionError listing each invalid request (method, path, field at fault)."""
        invalid = self.invalid_requests
        if invalid:
            lines = "\n".join(f"  {request.describe()}" for request in invalid)
            raise AssertionError(
                f"{len(invalid)} request(s) not valid under {self.title}:\n{lines}"
            )

    # ---------------------------------------------------------------- handling

    def _handle(self, handler: _Handler) -> None:
        started = time.perf_counter()
        spec = self._compiled.spec
        method = handler.command.upper()
        split = urlsplit(handler.path)
        full_path = split.path
        query = parse_qsl(split.query, keep_blank_values=True)
        header_items = [(key, value) for key, value in handler.headers.items()]
        headers = _CaseInsensitiveDict(header_items)
        raw = _read_body(handler)
        media_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = _parse_body(raw, media_type)

        relative = full_path
        operation: Operation | None = None
        path_params: dict[str, str] = {}
        if not spec.base_path or full_path.startswith(spec.base_path + "/"):
            relative = full_path[len(spec.base_path) :]
            operation, path_params = spec.find(method, relative)
        findings: list[Finding] = []
        if operation is None:
            allowed = path_params.get("allowed")
            hint = f" (the path allows {allowed})" if allowed else ""
            findings.append(
                Finding("operation", f"no operation {method} {full_path} in {spec.title}{hint}")
            )
            path_params = {}
        else:
            findings = self._validate(
                operation, full_path, path_params, query, header_items, raw, headers, body
            )
        validation_seconds = time.perf_counter() - started

        answer: Answer
        delay = 0.0
        if operation is None:
            answer = Answer(404, {"error": "not_found", "message": findings[0].message}, {}, False)
        else:
            delay = self._take_delay(operation, relative)
            if findings:
                answer = Answer(
                    400,
                    {
                        "error": "invalid_request",
                        "message": "; ".join(str(f) for f in findings),
                        "findings": [{"field": f.location, "message": f.message} for f in findings],
                    },
                    {},
                    False,
                )
            else:
                answer = self._take_answer(operation, relative)

        status = answer.status
        body_out: Any = answer.json
        if operation is not None and body_out is None:
            if answer.validate:
                try:
                    body_out = self._compiled.default_body(operation, status)
                except ValueError as error:
                    findings.append(Finding("response", str(error)))
                    status = 500
                    body_out = {"error": "no_valid_default_answer", "message": str(error)}
            else:
                body_out = self._compiled.failure_body(operation, status)
        payload = b"" if body_out is None else json.dumps(body_out).encode()

        record = RecordedRequest(
            method=method,
            path=relative,
            full_path=full_path,
            operation=operation.template if operation is not None else None,
            path_params=path_params,
            query=dict(query),
            query_lists=_group(query),
            headers=headers,
            content_type=media_type,
            body=body,
            raw_body=raw,
            findings=tuple(findings),
            status=status,
            validation_seconds=validation_seconds,
        )
        with self._lock:
            self._requests.append(record)

        if delay > 0:
            self._stopping.wait(delay)
        with contextlib.suppress(OSError):
            handler.send_response(status)
            if payload:
                handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(payload)))
            for key, value in answer.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            if method != "HEAD":
                handler.wfile.write(payload)
            handler.wfile.flush()

    def _crashed(self, handler: _Handler, error: Exception) -> None:
        """Record a request the server failed to handle, and answer 500."""
        split = urlsplit(handler.path)
        finding = Finding("server", f"internal error: {type(error).__name__}: {error}")
        record = RecordedRequest(
            method=handler.command.upper(),
            path=split.path,
            full_path=split.path,
            operation=None,
            path_params={},
            query=dict(parse_qsl(split.query)),
            query_lists=_group(parse_qsl(split.query)),
            headers=_CaseInsensitiveDict(handler.headers.items()),
            content_type="",
            body=None,
            raw_body=b"",
            findings=(finding,),
            status=500,
            validation_seconds=0.0,
        )
        with self._lock:
            self._requests.append(record)
        payload = json.dumps({"error": "internal_error", "message": str(finding)}).encode()
        with contextlib.suppress(OSError):
            handler.send_response(500)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(payload)
        handler.close_connection = True

    def _validate(
        self,
        operation: Operation,
        full_path: str,
        path_params: Mapping[str, str],
        query: Sequence[tuple[str, str]],
        header_items: Sequence[tuple[str, str]],
        raw: bytes,
        headers: Mapping[str, str],
        body: Any,
    ) -> list[Finding]:
        findings = self._security_findings(operation, query, headers, body)
        content_type = headers.get("Content-Type", "").lower()
        dropped: set[str] = set()
        if raw and content_type.split(";")[0].strip() == _FORM_TYPE:
            raw, cast_findings, dropped = self._precast_form(operation, raw)
            findings.extend(cast_findings)
        request = _CoreRequest(
            method=operation.method,
            path=full_path,
            path_pattern=self._compiled.spec.base_path + operation.template,
            path_params=path_params,
            query=query,
            headers=header_items,
            body=raw,
            content_type=content_type,
        )
        skip = {f"body.{name}" for name in dropped}
        try:
            for error in self._compiled.app.iter_request_errors(request):
                findings.extend(
                    finding
                    for finding in _findings_from_error(error)
                    if not (
                        finding.location in skip and finding.message == "required property missing"
                    )
                )
        except Exception as error:  # a validator crash must not pass for a valid request
            findings.append(
                Finding("request", f"could not be validated: {type(error).__name__}: {error}")
            )
        return findings

    def _precast_form(
        self, operation: Operation, raw: bytes
    ) -> tuple[bytes, list[Finding], set[str]]:
        """Check that form fields typed boolean/integer/number can be read as such.

        openapi-core casts form values (all strings on the wire) to the schema's types, and a
        value it cannot cast stops validation of the whole body without naming the field. So
        such fields are reported here, by name, and left out of the body openapi-core sees.
        """
        document = self._compiled.spec.document
        content = (operation.spec.get("requestBody") or {}).get("content") or {}
        schema = resolve((content.get(_FORM_TYPE) or {}).get("schema"), document)
        properties = schema.get("properties") or {} if isinstance(schema, dict) else {}
        kept: list[tuple[str, str]] = []
        findings: list[Finding] = []
        dropped: set[str] = set()
        for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            prop = resolve(properties.get(name), document)
            kind = prop.get("type") if isinstance(prop, dict) else None
            try:
                if kind == "boolean":
                    forcebool(value)
                elif kind == "integer":
                    int(value)
                elif kind == "number":
                    float(value)
            except ValueError:
                findings.append(Finding(f"body.{name}", f"{value!r} is not a valid {kind}"))
                dropped.add(name)
            else:
                kept.append((name, value))
        if not dropped:
            return raw, [], set()
        return urlencode(kept).encode(), findings, dropped

    def _security_findings(
        self,
        operation: Operation,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: Any,
    ) -> list[Finding]:
        document = self._compiled.spec.document
        requirements = operation.spec.get("security", document.get("security"))
        needs = bool(requirements) and not any(req == {} for req in requirements)
        credential_headers = [
            param for param in operation.parameters(document) if _is_credential_header(param)
        ]
        if any(param.get("required") for param in credential_headers):
            needs = True
        if not needs:
            return []
        names = {name.lower() for name in ("Authorization",)}
        query_names = set(_CREDENTIAL_PARAMS)
        schemes = (document.get("components") or {}).get("securitySchemes") or {}
        for requirement in requirements or []:
            for scheme_name in requirement:
                scheme = schemes.get(scheme_name) or {}
                if scheme.get("type") == "apiKey":
                    if scheme.get("in") == "header":
                        names.add(str(scheme.get("name", "")).lower())
                    elif scheme.get("in") == "query":
                        query_names.add(str(scheme.get("name", "")))
        names.update(str(param.get("name", "")).lower() for param in credential_headers)
        if any(headers.get(name) for name in names):
            return []
        if any(key in query_names and value for key, value in query):
            return []
        if isinstance(body, dict) and any(body.get(name) for name in _CREDENTIAL_PARAMS):
            return []
        required = ", ".join(
            sorted({name for requirement in requirements or [] for name in requirement})
        ) or ", ".join(str(param.get("name")) for param in credential_headers)
        return [
            Finding(
                "header.Authorization",
                f"credentials missing (the description requires {required}; send an "
                "Authorization header or a token parameter)",
            )
        ]

    def _take_delay(self, operation: Operation, path: str) -> float:
        with self._lock:
            rules = self._rules.get(operation.key)
            if rules is None:
                return 0.0
            for index, delay in enumerate(rules.delays):
                if delay.concrete in (None, path):
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        del rules.delays[index]
                    return delay.seconds
        return 0.0

    def _take_answer(self, operation: Operation, path: str) -> Answer:
        with self._lock:
            rules = self._rules.get(operation.key)
            if rules is not None:
                for index, queued in enumerate(rules.queue):
                    if queued.concrete in (None, path):
                        queued.remaining -= 1
                        if queued.remaining <= 0:
                            del rules.queue[index]
                        return queued.answer
                for key in (path, None):
                    if key in rules.standing:
                        return rules.standing[key]
        return Answer(status=_first_success(operation), validate=False)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = handler.headers.get("Content-Length")
    if length:
        return handler.rfile.read(int(length))
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    return b""


def _parse_body(raw: bytes, media_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    if "json" in media_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _group(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, tuple[str, ...]] = {}
    for key, value in pairs:
        grouped[key] = (*grouped.get(key, ()), value)
    return grouped
