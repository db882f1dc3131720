"""The Bolt app, driven in-process with signed requests: what each command does to the flow,
what it answers, and which requests it refuses."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from incident_flow_slack.app import ChannelIndex, ReplayGuard, build_app
from incident_flow_slack.commands import COMMAND, escape
from incident_flow_slack.messages import recap
from slack_app_fixtures import (
    BOT_TOKEN,
    CHANNEL,
    LEAD,
    MESSENGER,
    REPORTER,
    SIGNING_SECRET,
    ResponseURL,
    answer,
    app_config,
    command_body,
    dispatch,
    incident_with_channel,
    make_flow,
    sign,
    submission_body,
    wait_for,
)
from slack_bolt import App, BoltRequest
from slack_sdk.signature import SignatureVerifier

from incident_flow import IncidentFlow
from incident_flow.errors import AdapterConfigError
from incident_flow.model import Incident, Role, Severity
from incident_flow.testing.vendor_api import VendorAPI, default_specs_dir


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends every request through ``HTTP(S)_PROXY`` when set, 127.0.0.1 included."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def app_flow() -> Iterator[IncidentFlow]:
    flow = make_flow()
    yield flow
    flow.shutdown()


@pytest.fixture
def incident(app_flow: IncidentFlow) -> Incident:
    """A customer-impacting major incident whose channel is ``CHANNEL``."""
    return incident_with_channel(app_flow)


@pytest.fixture
def app(app_flow: IncidentFlow) -> App:
    return build_app(app_flow, app_config())


def say(app: App, text: str, **options: Any) -> str:
    """Type ``/incident <text>`` and return the (ephemeral) answer's text."""
    body = answer(dispatch(app, command_body(text, **options)))
    assert body.get("response_type") == "ephemeral", body
    text_out: str = body["text"]
    return text_out


# -- signatures and replays --------------------------------------------------------------------


def test_a_signed_request_is_answered(app: App) -> None:
    assert "`/incident lead @user`" in say(app, "help")


def test_an_unsigned_request_is_refused(app: App) -> None:
    body = command_body("help")
    response = dispatch(app, body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status == 401


def test_a_bad_signature_is_refused(app: App) -> None:
    body = command_body("help")
    response = dispatch(app, body, headers=sign(body, secret="not-the-signing-secret"))
    assert response.status == 401


def test_a_signature_of_another_body_is_refused(app: App) -> None:
    headers = sign(command_body("help"))
    assert dispatch(app, command_body("triage"), headers=headers).status == 401


@pytest.mark.parametrize("age", [301, 3600, -400])
def test_a_stale_or_future_timestamp_is_refused(app: App, age: int) -> None:
    """Bolt's verifier allows five minutes either way, and the signature covers the time."""
    body = command_body("help")
    response = dispatch(app, body, headers=sign(body, timestamp=int(time.time()) - age))
    assert response.status == 401


def test_a_replayed_request_is_refused(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    body = command_body("triage")
    headers = sign(body)
    assert dispatch(app, body, headers=headers).status == 200
    assert dispatch(app, body, headers=headers).status == 401
    assert app_flow.get(incident.id).phase == "triaged"


def test_the_same_command_signed_again_is_a_new_request(app: App) -> None:
    body = command_body("help")
    assert dispatch(app, body, headers=sign(body, timestamp=int(time.time()) - 1)).status == 200
    assert dispatch(app, body, headers=sign(body)).status == 200


def test_a_refused_signature_is_not_remembered_by_the_replay_guard(app: App) -> None:
    """Only verified requests are remembered, so a forgery cannot block the real request."""
    body = command_body("help")
    good = sign(body)
    forged = dict(good, **{"x-slack-request-timestamp": str(int(time.time()) - 10)})
    assert dispatch(app, body, headers=forged).status == 401
    assert dispatch(app, body, headers=good).status == 200


def test_the_replay_guard_forgets_after_the_window_and_stays_bounded() -> None:
    now = [1_000_000.0]
    guard = ReplayGuard(window=300, limit=3, clock=lambda: now[0])
    assert guard.first_time("v0=a", "1000000")
    assert not guard.first_time("v0=a", "1000000")
    now[0] += 301  # a replay now would be refused by the timestamp check instead
    assert guard.first_time("v0=a", "1000301")
    for name in ("b", "c", "d"):
        assert guard.first_time(f"v0={name}", "1000301")
    assert "remembered=3" in repr(guard)


def test_the_replay_guard_counts_as_one_for_threads() -> None:
    guard = ReplayGuard()
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        outcome = guard.first_time("v0=same", str(int(time.time())))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_serving_over_http_needs_the_signing_secret(app_flow: IncidentFlow) -> None:
    with pytest.raises(AdapterConfigError, match="SLACK_SIGNING_SECRET") as raised:
        build_app(app_flow, app_config(signing_secret=None))
    assert raised.value.setting == "SLACK_SIGNING_SECRET"


def test_socket_mode_needs_no_signing_secret(app_flow: IncidentFlow) -> None:
    assert isinstance(build_app(app_flow, app_config(signing_secret=None), socket_mode=True), App)


def test_secrets_never_show_in_reprs_or_logs(
    app_flow: IncidentFlow, incident: Incident, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = app_config()
    app = build_app(app_flow, config)
    body = command_body("triage")
    dispatch(app, body, headers=sign(body, secret="wrong"))  # Bolt logs the refused request
    say(app, "triage")
    say(app, "resolve")  # refused
    shown = caplog.text + repr(config) + repr(app) + repr(app.client)
    assert BOT_TOKEN not in shown
    assert SIGNING_SECRET not in shown


# -- commands ------------------------------------------------------------------------------------


def test_lead_assigns_the_mentioned_user(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    text = say(app, f"lead <@{LEAD}|lee>", user=REPORTER)
    assert app_flow.get(incident.id).lead == LEAD
    assert f"<@{LEAD}> is now the Incident Lead of *{incident.id}*" in text
    assert app_flow.history(incident.id)[-1].actor == REPORTER


def test_me_assigns_the_person_typing(app: App, app_flow: IncidentFlow, incident: Incident) -> None:
    say(app, "messenger me", user=MESSENGER)
    assert app_flow.get(incident.id).messenger == MESSENGER


def test_owner_assigns_the_resolution_owner(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    say(app, "owner <@U0OWNER|o>")
    assert app_flow.get(incident.id).roles[Role.RESOLUTION_OWNER] == "U0OWNER"


def test_a_handbook_warning_is_shown(app: App, app_flow: IncidentFlow, incident: Incident) -> None:
    say(app, f"lead <@{LEAD}|l>")
    text = say(app, f"messenger <@{LEAD}|l>")
    assert ":warning:" in text
    assert app_flow.get(incident.id).warnings


def test_the_whole_incident_from_slack(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    say(app, f"lead <@{LEAD}|l>", user=REPORTER)
    say(app, f"messenger <@{MESSENGER}|m>", user=REPORTER)
    assert "You own" in say(app, "ack", user=LEAD)
    assert app_flow.get(incident.id).lead_acknowledged_by == LEAD
    assert "now *triaged*" in say(app, "triage")
    assert app_flow.get(incident.id).phase == "triaged"
    assert "now *mitigating*" in say(app, "mitigate")
    assert app_flow.get(incident.id).phase == "mitigating"
    assert "Rollback (failed) recorded" in say(app, "rollback failed migration cannot be undone")
    rollback = app_flow.get(incident.id).rollbacks[-1]
    assert (rollback.outcome, rollback.succeeded, rollback.by) == (
        "migration cannot be undone",
        False,
        LEAD,
    )
    post = (
        "We are investigating errors in search on sourcegraph.com. If you have any questions, "
        "email support@sourcegraph.com."
    )
    assert "Status update (investigating) posted" in say(
        app, f"statuspage investigating {post}", user=MESSENGER
    )
    update = app_flow.get(incident.id).status_updates[-1]
    assert (update.text, update.phase, update.by) == (post, "investigating", MESSENGER)
    assert "now *resolved*" in say(app, "resolve", user=LEAD)
    assert app_flow.get(incident.id).phase == "resolved"


def test_severity_changes(app: App, app_flow: IncidentFlow, incident: Incident) -> None:
    assert "now critical" in say(app, "severity critical")
    assert app_flow.get(incident.id).severity is Severity.CRITICAL


def test_minor_is_refused_with_the_pointer_to_support(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    text = say(app, "severity minor")
    assert "support and feedback processes" in text
    assert app_flow.get(incident.id).severity is Severity.MAJOR


def test_false_positive(app: App, app_flow: IncidentFlow, incident: Incident) -> None:
    assert "false positive" in say(app, "false-positive it was a load test")
    now = app_flow.get(incident.id)
    assert (now.phase, now.false_positive_reason) == ("false_positive", "it was a load test")


def test_an_incident_that_is_over_leaves_the_channel_index(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    say(app, "false-positive a load test")
    assert "belongs to no open incident" in say(app, "triage")


def test_recap_shows_where_the_incident_stands(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    say(app, f"lead <@{LEAD}|l>")
    body = answer(dispatch(app, command_body("recap")))
    current = app_flow.get(incident.id)
    assert body["text"] == recap(current)
    assert body["blocks"]
    assert current.version == incident.version + 1  # a recap writes nothing


# -- refusals and mistakes -----------------------------------------------------------------------


def test_a_refusal_lists_every_unmet_requirement(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    before = app_flow.get(incident.id).version
    text = say(app, "mitigate")
    unmet = app_flow.requirements(incident.id, "start_mitigation", by=LEAD)
    assert {r.name for r in unmet} == {"lead_assigned", "lead_acknowledged", "messenger_assigned"}
    assert text.startswith(f":no_entry: Cannot start mitigation *{incident.id}*")
    for requirement in unmet:
        assert f"• `{requirement.name}`: " in text
        assert escape(requirement.reason) in text
    assert app_flow.get(incident.id).version == before


def test_a_refusal_by_phase_says_so(app: App, incident: Incident) -> None:
    text = say(app, "resolve")
    assert "`phase`" in text or "`actor_is_lead`" in text


def test_bad_input_answers_with_its_message(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    text = say(app, "statuspage sideways all good")
    assert text.startswith(":warning:")
    assert "sideways" in text
    assert not app_flow.get(incident.id).status_updates


def test_a_usage_mistake_shows_the_usage(app: App, incident: Incident) -> None:
    assert "`/incident lead @user`" in say(app, "lead bob")


def test_an_unknown_subcommand_in_an_incident_channel_answers_with_help(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    text = say(app, "acknowledged")
    assert "I don't know `acknowledged`" in text
    assert "`/incident triage`" in text
    assert len(app_flow.list()) == 1


def test_an_incident_command_outside_an_incident_channel_says_how(
    app: App, app_flow: IncidentFlow, incident: Incident
) -> None:
    text = say(app, "triage", channel="C0GENERAL")
    assert "works in an incident's channel" in text
    assert f"`{COMMAND} <title>`" in text
    assert app_flow.get(incident.id).phase == "identified"


def test_help_works_anywhere(app: App) -> None:
    assert "`/incident recap`" in say(app, "help", channel="C0GENERAL")


def test_a_channel_recorded_after_the_first_look_is_found(app: App, app_flow: IncidentFlow) -> None:
    assert "belongs to no open incident" in say(app, "triage", channel="C0NEW")
    incident_with_channel(app_flow, "C0NEW", title="Code intel is down")
    assert "now *triaged*" in say(app, "triage", channel="C0NEW")


def test_nothing_else_leaks_to_users(
    app_flow: IncidentFlow, incident: Incident, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Incident:
        raise RuntimeError("database password is hunter2")

    app_flow.triage = broken  # type: ignore[method-assign]
    app = build_app(app_flow, app_config())
    with caplog.at_level(logging.ERROR, logger="incident_flow_slack"):
        text = say(app, "triage")
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "Something went wrong" in text
    assert "hunter2" in caplog.text  # the operator sees what happened


# -- answering later, and answers that cannot be delivered -----------------------------------------


class _GatedFlow(IncidentFlow):
    """A flow whose triage waits for the test, as a slow database would."""

    gate = threading.Event()

    def triage(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        assert self.gate.wait(10)
        return super().triage(incident_id, by=by, at=at)


def test_a_slow_command_is_acknowledged_at_once_and_answered_later() -> None:
    flow = make_flow(_GatedFlow)
    gated = flow
    assert isinstance(gated, _GatedFlow)
    gated.gate = threading.Event()
    try:
        incident = incident_with_channel(flow)
        app = build_app(flow, app_config(), ack_within=0.05)
        with ResponseURL() as later:
            first = answer(dispatch(app, command_body("triage", response_url=later.url)))
            assert "Working on it" in first["text"]
            gated.gate.set()
            assert wait_for(lambda: later.bodies)
        assert later.bodies[0]["response_type"] == "ephemeral"
        assert "now *triaged*" in later.bodies[0]["text"]
        assert flow.get(incident.id).phase == "triaged"
    finally:
        gated.gate.set()
        flow.shutdown()


@pytest.mark.parametrize("refusing", [True, False], ids=["http-500", "unreachable"])
def test_an_answer_slack_cannot_take_is_logged_not_raised(
    refusing: bool, caplog: pytest.LogCaptureFixture
) -> None:
    flow = make_flow(_GatedFlow)
    assert isinstance(flow, _GatedFlow)
    flow.gate = threading.Event()
    try:
        incident = incident_with_channel(flow)
        app = build_app(flow, app_config(), ack_within=0.05)
        with ResponseURL(status=500) as later, caplog.at_level(logging.WARNING):
            # port 9: nothing listens there
            url = later.url if refusing else "http://127.0.0.1:9/commands/T0001/1/abc"
            answer(dispatch(app, command_body("triage", response_url=url)))
            flow.gate.set()
            assert wait_for(lambda: "response_url" in caplog.text)
        assert flow.get(incident.id).phase == "triaged"
    finally:
        flow.gate.set()
        flow.shutdown()


# -- the declaration form ------------------------------------------------------------------------


def _slack_api_with_current_views_open() -> dict[str, Any]:
    """Slack's Web API description, with views.open as Slack documents it today.

    The description (2021) lists views.open as a GET with query parameters; Slack's current
    documentation (https://api.slack.com/methods/views.open) and its SDK send a POST, as JSON.
    Per ``../shared/specs/README.md``, the current documentation wins: the POST is checked
    against the same parameters, sent as a body.
    """
    document: dict[str, Any] = json.loads(
        (default_specs_dir() / "slack_web_openapi_v2.json").read_text(encoding="utf-8")
    )
    described = document["paths"]["/views.open"]["get"]
    post = copy.deepcopy(described)
    post["operationId"] = "views_open_post"
    post["parameters"] = [
        dict(param, **{"in": "formData"}) if param["in"] == "query" else param
        for param in described["parameters"]
    ]
    document["paths"]["/views.open"]["post"] = post
    return document


@pytest.fixture
def slack_web_api() -> Iterator[VendorAPI]:
    with VendorAPI(_slack_api_with_current_views_open()) as api:
        yield api


def test_a_title_opens_the_declaration_form(
    app_flow: IncidentFlow, slack_web_api: VendorAPI
) -> None:
    app = build_app(app_flow, app_config(slack_web_api.base_url + "/"))
    body = command_body("Search is down", channel="C0GENERAL", trigger_id="123.456.abc")
    response = dispatch(app, body)
    assert response.status == 200
    assert not response.body  # nothing to say: the form opens
    opened = wait_for(lambda: slack_web_api.requests_to("POST", "/views.open"))
    assert [request.status for request in opened] == [200]
    request = opened[0]
    assert request.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert request.body["trigger_id"] == "123.456.abc"
    view = request.body["view"]
    assert view["type"] == "modal"
    assert view["callback_id"] == "incident_declare"
    blocks = {block["block_id"]: block for block in view["blocks"]}
    assert blocks["title"]["element"]["initial_value"] == "Search is down"
    options = [o["value"] for o in blocks["severity"]["element"]["options"]]
    assert options == ["critical", "major", "minor"]
    assert [o["value"] for o in blocks["impact"]["element"]["options"]] == ["yes", "no"]
    assert blocks["description"]["optional"] is True
    assert app_flow.list() == []  # the form declares, not the command


def test_declare_spelled_out_opens_the_form_even_in_an_incident_channel(
    app_flow: IncidentFlow, incident: Incident, slack_web_api: VendorAPI
) -> None:
    app = build_app(app_flow, app_config(slack_web_api.base_url + "/"))
    assert dispatch(app, command_body("declare Code intel is down")).status == 200
    opened = wait_for(lambda: slack_web_api.requests_to("POST", "/views.open"))
    assert opened[0].body["view"]["blocks"][0]["element"]["initial_value"] == "Code intel is down"


def test_a_form_slack_does_not_open_is_told_to_the_user(
    app_flow: IncidentFlow, slack_web_api: VendorAPI
) -> None:
    slack_web_api.fail(
        "POST", "/views.open", status=200, json={"ok": False, "error": "expired_trigger_id"}
    )
    app = build_app(app_flow, app_config(slack_web_api.base_url + "/"))
    with ResponseURL() as later:
        body = command_body("Search is down", channel="C0GENERAL", response_url=later.url)
        assert dispatch(app, body).status == 200
        assert wait_for(lambda: later.bodies)
    assert "did not open the declaration form" in later.bodies[0]["text"]


def test_the_form_declares_by_the_submitter(app: App, app_flow: IncidentFlow) -> None:
    body = answer(
        dispatch(app, submission_body(severity="critical", impact="no", description="500s"))
    )
    assert body["response_action"] == "update"
    [declared] = app_flow.list()
    assert (declared.title, declared.severity, declared.customer_impact) == (
        "Search is down",
        Severity.CRITICAL,
        False,
    )
    assert declared.description == "500s"
    assert declared.roles[Role.REPORTER] == REPORTER
    assert declared.id in body["view"]["blocks"][0]["text"]["text"]


def test_the_form_refuses_minor_with_the_pointer_to_support(
    app: App, app_flow: IncidentFlow
) -> None:
    body = answer(dispatch(app, submission_body(severity="minor")))
    assert body["response_action"] == "errors"
    assert "support and feedback processes" in body["errors"]["severity"]
    assert app_flow.list() == []


def test_the_form_asks_about_customer_impact(app: App, app_flow: IncidentFlow) -> None:
    body = answer(dispatch(app, submission_body(impact=None)))
    assert body == {
        "response_action": "errors",
        "errors": {"impact": "Say whether customers are hit."},
    }
    assert app_flow.list() == []


def test_the_form_shows_a_bad_title_on_the_title(app: App, app_flow: IncidentFlow) -> None:
    body = answer(dispatch(app, submission_body(title="   ")))
    assert body["response_action"] == "errors"
    assert "title" in body["errors"]
    assert app_flow.list() == []


def test_a_submission_needs_a_signature_too(app: App, app_flow: IncidentFlow) -> None:
    body = submission_body()
    headers = sign(body, secret="wrong")
    assert dispatch(app, body, headers=headers).status == 401
    assert app_flow.list() == []


# -- the channel index ---------------------------------------------------------------------------


def test_the_index_reads_the_flow_only_on_a_miss(
    app_flow: IncidentFlow, incident: Incident
) -> None:
    calls: list[str | None] = []
    listing: Callable[..., list[Incident]] = app_flow.list

    def counting(*, phase: str | None = None) -> list[Incident]:
        calls.append(phase)
        return listing(phase=phase)

    app_flow.list = counting  # type: ignore[method-assign]
    index = ChannelIndex(app_flow)
    assert index.incident_for(CHANNEL) == incident.id
    looked = len(calls)
    assert looked > 0
    assert index.incident_for(CHANNEL) == incident.id
    assert len(calls) == looked
    assert index.incident_for("C0OTHER") is None
    assert len(calls) == 2 * looked
    assert index.incident_for("") is None
    assert len(calls) == 2 * looked


def test_the_signature_scheme_is_slacks_v0() -> None:
    """The tests sign as Slack documents it: v0=HMAC-SHA256(secret, "v0:<ts>:<body>")."""
    import hashlib
    import hmac

    expected = hmac.new(SIGNING_SECRET.encode(), b"v0:1531420618:a=b", hashlib.sha256)
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(
        timestamp="1531420618", body="a=b"
    )
    assert signature == "v0=" + expected.hexdigest()


def test_a_form_that_fails_to_declare_says_so_without_details(
    app_flow: IncidentFlow, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Incident:
        raise RuntimeError("disk full at /var/lib/secret-path")

    app_flow.declare = broken  # type: ignore[method-assign]
    app = build_app(app_flow, app_config())
    with caplog.at_level(logging.ERROR, logger="incident_flow_slack"):
        body = answer(dispatch(app, submission_body()))
    assert body["response_action"] == "errors"
    assert "secret-path" not in json.dumps(body)
    assert "Something went wrong" in body["errors"]["title"]
    assert "secret-path" in caplog.text


def test_socket_mode_requests_need_no_signature(app_flow: IncidentFlow, incident: Incident) -> None:
    """Socket Mode requests come over the app's own authenticated connection, unsigned."""
    app = build_app(app_flow, app_config(signing_secret=None), socket_mode=True)
    body = command_body("triage")
    for _ in range(2):  # and a repeat is not a replay: Slack does not sign them
        response = app.dispatch(BoltRequest(body=body, mode="socket_mode"))
        assert response.status == 200
    assert app_flow.get(incident.id).phase == "triaged"
