"""The local vendor API server: validation against the six vendor descriptions in ../shared/specs.

The descriptions are read from `../shared/specs/` beside the project root (never copied into the
project); when that folder is missing, every test here fails with `SpecsNotFoundError` saying
where it looked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from incident_flow.testing._openapi import load_spec, string_for_pattern, swagger2_to_openapi3
from incident_flow.testing.vendor_api import (
    SPECS_DIR_ENV,
    Answer,
    Finding,
    SpecsNotFoundError,
    VendorAPI,
    default_specs_dir,
)

ROOT = Path(__file__).resolve().parents[1]
SLACK = "slack_web_openapi_v2.json"
OPSGENIE = "opsgenie_swagger.json"
PD_EVENTS = "pagerduty_events_v2_openapiv3.json"
PD_REST = "pagerduty_rest_openapiv3.json"
STATUSPAGE = "statuspage_openapi.json"
GITHUB = "github_issues_subset_openapi.json"

SLACK_AUTH = {"Authorization": "Bearer xoxb-test"}
PD_REST_HEADERS = {
    "Authorization": "Token token=test",
    "Accept": "application/vnd.pagerduty+json;version=2",
    "Content-Type": "application/json",
}


class Reply:
    """What the client got back."""

    def __init__(self, status: int, headers: Mapping[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.json: Any = json.loads(raw) if raw else None


def call(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
    raw: bytes | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request with urllib, HTTP errors included as replies."""
    sent = dict(headers or {})
    data = raw
    if json_body is not None:
        data = json.dumps(json_body).encode()
        sent.setdefault("Content-Type", "application/json; charset=utf-8")
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if content_type is not None:
        sent["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, dict(error.headers), error.read())


# ------------------------------------------------------------------------------ the spec folder


def test_the_descriptions_are_read_from_shared_specs_beside_the_project_root() -> None:
    assert default_specs_dir() == ROOT.parent / "shared" / "specs"
    with VendorAPI.from_spec(PD_EVENTS) as api:
        assert api.spec.path == (ROOT.parent / "shared" / "specs" / PD_EVENTS).resolve()


def test_a_missing_specs_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecsNotFoundError, match=r"folder not found: .*nowhere.*\.\./shared/specs"):
        VendorAPI.from_spec(SLACK, specs_dir=tmp_path / "nowhere")


def test_the_specs_folder_can_be_moved_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SPECS_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_specs_dir() == tmp_path / "elsewhere"
    with pytest.raises(SpecsNotFoundError, match="elsewhere"):
        VendorAPI.from_spec(SLACK)


def test_a_missing_description_names_the_available_ones(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(
        SpecsNotFoundError, match=r"'nope\.json' not found .*available: other\.json"
    ):
        VendorAPI.from_spec("nope.json", specs_dir=tmp_path)


# ------------------------------------------------------------------------------ Slack (Swagger 2.0)


def test_slack_chat_post_message_as_a_form_like_the_sdk_sends_it() -> None:
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "*SEV1*"}}])
    with VendorAPI.from_spec(SLACK) as api:
        assert api.base_url == api.url + "/api"
        reply = call(
            "POST",
            api.base_url + "/chat.postMessage",
            form={
                "channel": "C0123456789",
                "text": "Search is down",
                "blocks": blocks,
                "unfurl_links": "0",
                "mrkdwn": "true",
            },
            headers=SLACK_AUTH,
        )
        assert reply.status == 200
        assert reply.json["ok"] is True
        assert re.match(r"^\d{10}\.\d{6}$", reply.json["ts"])
        assert api.response_findings("POST", "/chat.postMessage", 200, reply.json) == []
        (recorded,) = api.requests_to("POST", "/chat.postMessage")
    assert recorded.valid
    assert recorded.full_path == "/api/chat.postMessage"
    assert recorded.content_type == "application/x-www-form-urlencoded"
    assert recorded.body == {
        "channel": "C0123456789",
        "text": "Search is down",
        "blocks": blocks,
        "unfurl_links": "0",
        "mrkdwn": "true",
    }
    assert recorded.headers["authorization"] == "Bearer xoxb-test"


def test_slack_chat_post_message_as_json_with_blocks_as_an_array() -> None:
    body = {
        "channel": "C0123456789",
        "text": "Search is down",
        "unfurl_links": False,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*SEV1*"}}],
    }
    with VendorAPI.from_spec(SLACK) as api:
        reply = call("POST", api.base_url + "/chat.postMessage", json_body=body, headers=SLACK_AUTH)
        assert reply.status == 200
        assert reply.json["ok"] is True
        assert api.requests[0].body == body


def test_slack_token_may_be_a_form_parameter() -> None:
    with VendorAPI.from_spec(SLACK) as api:
        reply = call(
            "POST",
            api.base_url + "/chat.postMessage",
            form={"token": "xoxb-test", "channel": "C0123456789", "text": "hi"},
        )
        assert reply.status == 200


def test_slack_conversations_create() -> None:
    with VendorAPI.from_spec(SLACK) as api:
        reply = call(
            "POST",
            api.base_url + "/conversations.create",
            form={"name": "inc-42-search-down", "is_private": "false"},
            headers=SLACK_AUTH,
        )
        assert reply.status == 200
        assert reply.json["ok"] is True
        assert re.match(r"^[CGD][A-Z0-9]{8,}$", reply.json["channel"]["id"])
        assert api.requests[0].body == {"name": "inc-42-search-down", "is_private": "false"}


def test_slack_missing_required_field_is_a_400_naming_it() -> None:
    with VendorAPI.from_spec(SLACK, strict=False) as api:
        reply = call(
            "POST", api.base_url + "/chat.postMessage", form={"text": "hi"}, headers=SLACK_AUTH
        )
        assert reply.status == 400
        assert reply.json["findings"] == [
            {"field": "body.channel", "message": "required property missing"}
        ]
        (recorded,) = api.requests
        assert not recorded.valid
        assert [str(f) for f in recorded.findings] == ["body.channel: required property missing"]
        with pytest.raises(AssertionError) as raised:
            api.assert_all_valid()
    assert "POST /api/chat.postMessage: body.channel: required property missing" in str(
        raised.value
    )


def test_slack_wrong_types_are_named() -> None:
    with VendorAPI.from_spec(SLACK, strict=False) as api:
        form = call(
            "POST",
            api.base_url + "/conversations.create",
            form={"name": "inc-1", "is_private": "maybe"},
            headers=SLACK_AUTH,
        )
        as_json = call(
            "POST",
            api.base_url + "/chat.postMessage",
            json_body={"channel": 5, "text": "hi"},
            headers=SLACK_AUTH,
        )
    assert form.status == as_json.status == 400
    assert form.json["message"] == "body.is_private: 'maybe' is not a valid boolean"
    assert as_json.json["message"] == "body.channel: 5 is not of type 'string'"


def test_slack_missing_token_is_a_finding() -> None:
    with VendorAPI.from_spec(SLACK, strict=False) as api:
        reply = call(
            "POST",
            api.base_url + "/chat.postMessage",
            form={"channel": "C0123456789", "text": "hi"},
        )
    assert reply.status == 400
    assert reply.json["findings"][0]["field"] == "header.Authorization"
    assert "credentials missing" in reply.json["message"]


def test_a_bad_content_type_is_a_finding() -> None:
    with VendorAPI.from_spec(SLACK, strict=False) as api:
        reply = call(
            "POST",
            api.base_url + "/chat.postMessage",
            raw=b"channel=C0123456789",
            content_type="text/plain",
            headers=SLACK_AUTH,
        )
    assert reply.status == 400
    assert reply.json["findings"][0]["field"] == "header.Content-Type"
    assert "'text/plain' not accepted" in reply.json["message"]


def test_unknown_paths_and_methods_are_404_and_invalid() -> None:
    with VendorAPI.from_spec(SLACK, strict=False) as api:
        unknown = call("POST", api.base_url + "/foo", form={"a": "b"}, headers=SLACK_AUTH)
        outside = call("GET", api.url + "/elsewhere")
        wrong_method = call("DELETE", api.base_url + "/chat.postMessage")
        assert [r.status for r in (unknown, outside, wrong_method)] == [404, 404, 404]
        assert unknown.json["message"] == "no operation POST /api/foo in Slack Web API"
        assert "no operation GET /elsewhere in Slack Web API" in outside.json["message"]
        assert "the path allows POST" in wrong_method.json["message"]
        assert len(api.invalid_requests) == 3
        assert api.requests[0].operation is None


# ------------------------------------------------------------------------------ the other five


def test_opsgenie_create_alert() -> None:
    alert = {
        "message": "Search is down",
        "alias": "inc-42",
        "priority": "P1",
        "responders": [{"type": "team", "name": "search"}],
        "tags": ["sev1"],
    }
    with VendorAPI.from_spec(OPSGENIE) as api:
        assert api.base_url == api.url
        reply = call(
            "POST",
            api.base_url + "/v2/alerts",
            json_body=alert,
            headers={"Authorization": "GenieKey test"},
        )
        assert reply.status == 202
        assert api.response_findings("POST", "/v2/alerts", 202, reply.json) == []
        assert api.requests[0].body == alert


def test_pagerduty_events_enqueue() -> None:
    event = {
        "routing_key": "R" * 32,
        "event_action": "trigger",
        "dedup_key": "inc-42",
        "payload": {"summary": "Search is down", "source": "search-1", "severity": "critical"},
    }
    with VendorAPI.from_spec(PD_EVENTS) as api:
        assert api.base_url == api.url + "/v2"
        reply = call("POST", api.base_url + "/enqueue", json_body=event)
        assert reply.status == 202
        assert api.response_findings("POST", "/v2/enqueue", 202, reply.json) == []
        assert api.requests_to("POST", "/v2/enqueue")[0].body == event


def test_pagerduty_rest_oncalls() -> None:
    query = "limit=25&earliest=true&user_ids[]=PU1&user_ids[]=PU2"
    with VendorAPI.from_spec(PD_REST) as api:
        reply = call("GET", f"{api.base_url}/oncalls?{query}", headers=PD_REST_HEADERS)
        assert reply.status == 200
        assert isinstance(reply.json["oncalls"], list)  # the description's own example
        assert api.response_findings("GET", "/oncalls", 200, reply.json) == []
        (recorded,) = api.requests_to("GET", "/oncalls")
    assert recorded.query["limit"] == "25"
    assert recorded.query_lists["user_ids[]"] == ("PU1", "PU2")


def test_statuspage_create_incident() -> None:
    incident = {
        "incident": {
            "name": "Search is down",
            "status": "investigating",
            "impact_override": "critical",
            "body": "We are looking into it.",
        }
    }
    with VendorAPI.from_spec(STATUSPAGE) as api:
        reply = call(
            "POST",
            api.base_url + "/pages/pg1/incidents",
            json_body=incident,
            headers={"Authorization": "OAuth test"},
        )
        assert reply.status == 201
        assert reply.json["id"]
        (recorded,) = api.requests_to("POST", "/pages/{page_id}/incidents")
    assert recorded.path == "/pages/pg1/incidents"
    assert recorded.full_path == "/v1/pages/pg1/incidents"
    assert recorded.path_params == {"page_id": "pg1"}
    assert "Statuspage" in api.title
    assert any("'Object'" in quirk for quirk in api.spec.quirks)


def test_github_comment_and_update_issue() -> None:
    with VendorAPI.from_spec(GITHUB) as api:
        comment = call(
            "POST",
            api.base_url + "/repos/acme/web/issues/12/comments",
            json_body={"body": "Mitigated."},
            headers={"Authorization": "Bearer t"},
        )
        update = call(
            "PATCH",
            api.base_url + "/repos/acme/web/issues/12",
            json_body={"state": "closed", "state_reason": "completed", "labels": ["incident"]},
        )
        assert (comment.status, update.status) == (201, 200)
        assert (
            api.response_findings(
                "PATCH", "/repos/{owner}/{repo}/issues/{issue_number}", 200, update.json
            )
            == []
        )
        (patch,) = api.requests_to("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}")
    assert patch.path_params == {"owner": "acme", "repo": "web", "issue_number": "12"}


@pytest.mark.parametrize(
    ("spec", "method", "path", "body", "headers", "expected"),
    [
        pytest.param(
            OPSGENIE,
            "POST",
            "/v2/alerts",
            {"priority": "P9"},
            {"Authorization": "GenieKey t"},
            [
                "body.message: required property missing",
                "body.priority: 'P9' is not one of ['P1', 'P2', 'P3', 'P4', 'P5']",
            ],
            id="opsgenie-missing-and-enum",
        ),
        pytest.param(
            OPSGENIE,
            "POST",
            "/v2/alerts",
            {"message": "x"},
            {},
            [
                "header.Authorization: credentials missing (the description requires "
                "GenieKey; send an Authorization header or a token parameter)"
            ],
            id="opsgenie-no-key",
        ),
        pytest.param(
            PD_EVENTS,
            "POST",
            "/enqueue",
            {
                "routing_key": "r",
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "h"},
            },
            {},
            ["body.payload.severity: required property missing"],
            id="pd-events-nested-required",
        ),
        pytest.param(
            STATUSPAGE,
            "POST",
            "/pages/pg1/incidents",
            {"incident": {"name": 5}},
            {"Authorization": "OAuth t"},
            ["body.incident.name: 5 is not of type 'string'"],
            id="statuspage-wrong-type",
        ),
        pytest.param(
            GITHUB,
            "POST",
            "/repos/acme/web/issues/twelve/comments",
            {},
            {},
            [
                "path.issue_number: 'twelve' is not a valid integer",
                "body.body: required property missing",
            ],
            id="github-path-and-body",
        ),
    ],
)
def test_invalid_requests_are_caught_naming_the_field(
    spec: str, method: str, path: str, body: Any, headers: dict[str, str], expected: list[str]
) -> None:
    with VendorAPI.from_spec(spec, strict=False) as api:
        reply = call(method, api.base_url + path, json_body=body, headers=headers)
        assert reply.status == 400
        assert [str(finding) for finding in api.requests[0].findings] == expected
        assert reply.json["message"] == "; ".join(expected)


def test_pagerduty_rest_query_errors_are_named() -> None:
    with VendorAPI.from_spec(PD_REST, strict=False) as api:
        reply = call("GET", api.base_url + "/oncalls?limit=ten", headers=PD_REST_HEADERS)
    assert reply.status == 400
    assert reply.json["message"] == "query.limit: 'ten' is not a valid integer"


# ------------------------------------------------------------------------------ scripting answers


def test_configured_answers_invalid_under_the_spec_are_refused() -> None:
    with VendorAPI.from_spec(SLACK) as api:
        with pytest.raises(ValueError, match=r"body\.message: required property missing") as raised:
            api.respond(
                "POST",
                "/chat.postMessage",
                status=200,
                json={"ok": True, "channel": "C1", "ts": "1.2"},
            )
        assert "body.channel: 'C1' does not match" in str(raised.value)
        with pytest.raises(ValueError, match=r"body\.surprise: property not allowed"):
            api.respond(
                "POST",
                "/conversations.create",
                json={**api.example_response("POST", "/conversations.create"), "surprise": 1},
            )
        with pytest.raises(ValueError, match=r"no operation POST /chat\.nope in Slack Web API"):
            api.respond("POST", "/chat.nope", json={"ok": True})
    with VendorAPI.from_spec(GITHUB) as api, pytest.raises(ValueError, match="status 200 not"):
        api.respond(
            "POST",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            status=200,
            json={"id": 1},
        )


def test_default_answers_use_the_descriptions_examples_when_they_are_valid() -> None:
    with VendorAPI.from_spec(PD_EVENTS) as api:
        assert api.example_response("POST", "/enqueue") == {
            "status": "success",
            "message": "Event processed",
            "dedup_key": "srv01/HTTP",
        }
    with VendorAPI.from_spec(SLACK) as api:
        operation, _ = api.spec.find("POST", "/chat.postMessage")
        assert operation is not None
        media = operation.spec["responses"]["200"]["content"]["application/json"]
        # Slack's own example is not valid under its schema: the answer is generated instead.
        assert api.response_findings("POST", "/chat.postMessage", 200, media["example"]) == [
            Finding("body.message.attachments[0].text", "property not allowed by the description")
        ]
        generated = api.example_response("POST", "/chat.postMessage")
        assert generated["ok"] is True
        assert api.response_findings("POST", "/chat.postMessage", 200, generated) == []


def test_a_configured_answer_is_served() -> None:
    with VendorAPI.from_spec(SLACK) as api:
        answer = api.example_response("POST", "/chat.postMessage")
        answer.update(channel="C0123456789", ts="1700000000.000100")
        api.respond("POST", "/api/chat.postMessage", json=answer)  # base path may be included
        reply = call(
            "POST",
            api.base_url + "/chat.postMessage",
            form={"channel": "C0123456789", "text": "hi"},
            headers=SLACK_AUTH,
        )
    assert reply.json == answer


def test_429_with_retry_after_then_the_configured_answer_resumes() -> None:
    with VendorAPI.from_spec(SLACK) as api:
        answer = {**api.example_response("POST", "/chat.postMessage"), "ts": "1700000000.000100"}
        api.respond("POST", "/chat.postMessage", json=answer)
        api.fail("POST", "/chat.postMessage", status=429, retry_after=30, times=1)
        url = api.base_url + "/chat.postMessage"
        form = {"channel": "C0123456789", "text": "hi"}
        limited = call("POST", url, form=form, headers=SLACK_AUTH)
        normal = call("POST", url, form=form, headers=SLACK_AUTH)
        assert [r.status for r in api.requests_to("POST", "/chat.postMessage")] == [429, 200]
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "30"
    assert limited.json == {"ok": False, "error": "ratelimited"}
    assert normal.status == 200
    assert normal.json == answer


def test_503_twice_then_the_default_answer_resumes() -> None:
    with VendorAPI.from_spec(OPSGENIE) as api:
        api.fail("POST", "/v2/alerts", status=503, times=2)
        statuses = [
            call(
                "POST",
                api.base_url + "/v2/alerts",
                json_body={"message": "down"},
                headers={"Authorization": "GenieKey t"},
            ).status
            for _ in range(3)
        ]
    assert statuses == [503, 503, 202]


def test_respond_sequence_and_times() -> None:
    path = "/repos/{owner}/{repo}/issues/{issue_number}"
    with VendorAPI.from_spec(GITHUB) as api:
        updated = {**api.example_response("PATCH", path), "state": "closed"}
        api.respond_sequence("PATCH", path, [Answer(status=503), Answer(200, json=updated)])
        api.respond("PATCH", path, status=422, times=1)
        url = api.base_url + "/repos/acme/web/issues/7"
        replies = [call("PATCH", url, json_body={"state": "closed"}) for _ in range(4)]
    assert [r.status for r in replies] == [503, 200, 422, 200]
    assert replies[1].json["state"] == "closed"
    assert replies[0].json is not None  # GitHub describes its 503 body; generated from it


def test_a_concrete_path_configures_only_that_path() -> None:
    with VendorAPI.from_spec(GITHUB) as api:
        api.fail("POST", "/repos/acme/web/issues/1/comments", status=502, times=5)
        other = call(
            "POST", api.base_url + "/repos/acme/web/issues/2/comments", json_body={"body": "x"}
        )
        this = call(
            "POST", api.base_url + "/repos/acme/web/issues/1/comments", json_body={"body": "x"}
        )
        assert (other.status, this.status) == (201, 502)
        assert [r.path for r in api.requests_to("POST", "/repos/acme/web/issues/1/comments")] == [
            "/repos/acme/web/issues/1/comments"
        ]


def test_delays_are_injected_then_answers_are_prompt_again() -> None:
    with VendorAPI.from_spec(PD_EVENTS) as api:
        api.delay("POST", "/enqueue", seconds=0.4, times=1)
        event = {"routing_key": "r", "event_action": "resolve", "dedup_key": "inc-42"}
        started = time.perf_counter()
        slow = call("POST", api.base_url + "/enqueue", json_body=event)
        slow_seconds = time.perf_counter() - started
        started = time.perf_counter()
        fast = call("POST", api.base_url + "/enqueue", json_body=event)
        fast_seconds = time.perf_counter() - started
    assert slow.status == fast.status == 202
    assert slow_seconds >= 0.4
    assert fast_seconds < 0.4


def test_a_client_timeout_during_a_delay_is_recorded_and_exit_does_not_wait() -> None:
    started = time.perf_counter()
    with VendorAPI.from_spec(PD_EVENTS) as api:
        api.delay("POST", "/enqueue", seconds=30, times=1)
        event = {"routing_key": "r", "event_action": "resolve", "dedup_key": "inc-42"}
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            call("POST", api.base_url + "/enqueue", json_body=event, timeout=0.3)
        assert call("POST", api.base_url + "/enqueue", json_body=event).status == 202
        assert len(api.requests) == 2
    assert time.perf_counter() - started < 10


# ------------------------------------------------------------------------------ strictness


def _adapter_test_that_swallows_a_400() -> None:
    with VendorAPI.from_spec(OPSGENIE) as api:
        reply = call(
            "POST",
            api.base_url + "/v2/alerts",
            json_body={"alias": "a"},
            headers={"Authorization": "GenieKey t"},
        )
        assert reply.status == 400  # an adapter might swallow this; the exit does not


def test_strict_exit_fails_a_test_that_made_an_invalid_request() -> None:
    with pytest.raises(AssertionError, match=r"POST /v2/alerts: body\.message: required"):
        _adapter_test_that_swallows_a_400()


def test_non_strict_exit_leaves_the_verdict_to_the_test() -> None:
    with VendorAPI.from_spec(OPSGENIE, strict=False) as api:
        call("POST", api.base_url + "/v2/alerts", json_body={}, headers={"Authorization": "k"})
    assert len(api.invalid_requests) == 1


def _test_that_fails_after_an_invalid_request() -> None:
    with VendorAPI.from_spec(OPSGENIE) as api:
        call("POST", api.base_url + "/v2/alerts", json_body={}, headers={})
        raise KeyError("the test's own failure")


def test_an_exception_in_the_block_is_not_masked_by_strictness() -> None:
    with pytest.raises(KeyError, match="the test's own failure"):
        _test_that_fails_after_an_invalid_request()


def test_reset_forgets_requests_and_scripts() -> None:
    with VendorAPI.from_spec(PD_EVENTS, strict=False) as api:
        api.fail("POST", "/enqueue", status=500, times=3)
        call("POST", api.base_url + "/enqueue", json_body={})
        api.reset()
        assert api.requests == []
        event = {"routing_key": "r", "event_action": "resolve", "dedup_key": "k"}
        assert call("POST", api.base_url + "/enqueue", json_body=event).status == 202


# ------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("name", [SLACK, OPSGENIE, PD_EVENTS, PD_REST, STATUSPAGE, GITHUB])
def test_every_description_loads_once(name: str) -> None:
    path = (default_specs_dir() / name).resolve()
    spec = load_spec(path)
    assert load_spec(path) is spec  # cached per file per process
    assert spec.document["openapi"].startswith("3.0")
    assert spec.operations


def test_a_description_can_be_given_as_a_dict() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "Tiny", "version": "1"},
        "basePath": "/api",
        "paths": {
            "/things/{id}": {
                "parameters": [{"name": "id", "in": "path", "type": "integer", "required": True}],
                "put": {
                    "consumes": ["application/x-www-form-urlencoded", "application/json"],
                    "parameters": [
                        {"name": "name", "in": "formData", "type": "string", "required": True},
                        {
                            "name": "tags",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "csv",
                        },
                    ],
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": "#/definitions/Thing"}}
                    },
                },
            }
        },
        "definitions": {
            "Thing": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "name": {"type": ["string", "null"]},
                },
            }
        },
    }
    with VendorAPI(doc) as api:
        ok = call("PUT", api.base_url + "/things/3?tags=a,b", form={"name": "x"})
        bad = call("PUT", api.base_url + "/things/3", json_body={"name": 1})
        assert api.requests[0].valid
        assert [str(f) for f in api.requests[1].findings] == [
            "body.name: 1 is not of type 'string'"
        ]
        api.reset()
    assert ok.json == {"id": 1, "name": "x"}
    assert bad.status == 400


def test_swagger2_conversion_of_the_structural_parts() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "T", "version": "1"},
        "host": "api.example.com",
        "basePath": "/v1",
        "securityDefinitions": {
            "key": {"type": "apiKey", "name": "Authorization", "in": "header"},
            "oauth": {
                "type": "oauth2",
                "flow": "accessCode",
                "authorizationUrl": "https://a",
                "tokenUrl": "https://t",
                "scopes": {"read": "read"},
            },
        },
        "parameters": {"Id": {"name": "id", "in": "path", "type": "string", "required": True}},
        "responses": {"Ok": {"description": "ok", "schema": {"$ref": "#/definitions/A"}}},
        "paths": {
            "/a/{id}": {
                "post": {
                    "parameters": [
                        {"$ref": "#/parameters/Id"},
                        {
                            "name": "body",
                            "in": "body",
                            "required": True,
                            "schema": {"$ref": "#/definitions/A"},
                        },
                    ],
                    "responses": {"200": {"$ref": "#/responses/Ok"}},
                }
            }
        },
        "definitions": {
            "A": {
                "type": "object",
                "discriminator": "kind",
                "properties": {
                    "kind": {"type": "string"},
                    "either": {"items": [{"type": "string"}, {"type": "null"}]},
                    "file": {"type": "file"},
                },
            }
        },
    }
    out = swagger2_to_openapi3(doc)
    assert out["openapi"] == "3.0.3"
    assert out["servers"] == [{"url": "https://api.example.com/v1"}]
    operation = out["paths"]["/a/{id}"]["post"]
    assert operation["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert operation["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}},
    }
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/A"
    }
    schema = out["components"]["schemas"]["A"]
    assert schema["x-discriminator"] == "kind"
    assert schema["properties"]["either"] == {
        "anyOf": [{"type": "string"}, {"nullable": True, "enum": [None]}]
    }
    assert schema["properties"]["file"] == {"type": "string", "format": "binary"}
    schemes = out["components"]["securitySchemes"]
    assert schemes["key"] == {"type": "apiKey", "name": "Authorization", "in": "header"}
    assert schemes["oauth"]["flows"]["authorizationCode"]["tokenUrl"] == "https://t"


def test_slack_form_parameters_become_form_and_json_bodies() -> None:
    with VendorAPI.from_spec(SLACK) as api:
        operation, _ = api.spec.find("POST", "/chat.postMessage")
    assert operation is not None
    content = operation.spec["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    form = content["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["channel"]
    assert form["properties"]["blocks"]["type"] == "string"
    assert "anyOf" in content["application/json"]["schema"]["properties"]["blocks"]


@pytest.mark.parametrize(
    "pattern", [r"^[CGD][A-Z0-9]{8,}$", r"^\d{10}\.\d{6}$", r"^[UW][A-Z0-9]{2,}$", r"^(a|bc)+x?$"]
)
def test_strings_are_generated_for_patterns(pattern: str) -> None:
    text = string_for_pattern(pattern)
    assert text is not None
    assert re.search(pattern, text)


def test_a_server_error_is_recorded_and_answered_500(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> object:
        raise RuntimeError("generator broke")

    with VendorAPI.from_spec(PD_EVENTS, strict=False) as api:
        monkeypatch.setattr(api._compiled, "default_body", broken)
        event = {"routing_key": "r", "event_action": "resolve", "dedup_key": "k"}
        reply = call("POST", api.base_url + "/enqueue", json_body=event)
    assert reply.status == 500
    assert [str(f) for f in api.requests[0].findings] == [
        "server: internal error: RuntimeError: generator broke"
    ]


def test_without_the_testing_extra_the_import_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['openapi_core'] = None\n"
        "try:\n"
        "    import incident_flow.testing.vendor_api\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "pip install incident-flow[testing]" in done.stdout
