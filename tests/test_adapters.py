"""incident_flow.adapters and the core support adapters build on: external references recorded as
events, the flow handed to the event hook, secrets, settings and vendor answers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from incident_flow import Event, FakeClock, Incident, IncidentFlow, hookimpl
from incident_flow.adapters import (
    Secret,
    env_secret,
    env_setting,
    once,
    raise_for_status,
    redact,
    retry_after_seconds,
    vendor_message,
)
from incident_flow.errors import (
    AdapterConfigError,
    InvalidFieldError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    UnknownIncidentError,
)
from incident_flow.events import ExternalRefRecorded
from incident_flow.store.sqlite import SQLiteStore
from incident_flow.testing.plugins import check_plugin
from tests.conftest import declare

# ------------------------------------------------------------------ record_external


def test_record_external_appends_an_event_and_a_reference(flow: IncidentFlow) -> None:
    incident = declare(flow)
    after = flow.record_external(
        incident.id,
        system="slack",
        kind="channel",
        external_id="C0123",
        url="https://slack.example/C0123",
        by="slack",
    )
    assert after.version == incident.version + 1
    ref = after.external_ref("slack", "channel")
    assert ref is not None
    assert (ref.external_id, ref.source, ref.url, ref.by) == (
        "C0123",
        "",
        "https://slack.example/C0123",
        "slack",
    )
    [event] = flow.history(incident.id)[-1:]
    assert isinstance(event, ExternalRefRecorded)
    assert after.phase == incident.phase


def test_a_recorded_reference_is_not_delivered_to_plugins(clock: FakeClock) -> None:
    plugin = Channeler()
    with IncidentFlow(clock=clock, plugins=[plugin], entry_points=False, reminders=False) as flow:
        incident = declare(flow)
        assert flow.drain(timeout=10)
        # The plugin recorded its channel (version 2): no delivery is queued for that event.
        current = flow.get(incident.id)
        assert current.version == 2
        assert [(d.version, d.plugin) for d in flow.deliveries()] == [(1, "channeler")]
        flow.record_external(incident.id, system="chat", kind="topic", external_id="t", by="p")
        assert [d.version for d in flow.deliveries()] == [1]
        # A later command's event is delivered as usual, in order after the gap.
        flow.assign(incident.id, "lead", "bob", by="alice")
        assert flow.drain(timeout=10)
        assert [(d.version, d.status) for d in flow.deliveries()] == [
            (1, "delivered"),
            (4, "delivered"),
        ]


def test_recording_the_same_reference_again_writes_nothing(flow: IncidentFlow) -> None:
    incident = declare(flow)
    first = flow.record_external(
        incident.id, system="opsgenie", kind="alert", external_id="a1", source="page-2", by="og"
    )
    again = flow.record_external(
        incident.id, system="opsgenie", kind="alert", external_id="a1", source="page-2", by="og"
    )
    assert again.version == first.version
    assert len(again.external_refs) == 1


def test_external_ref_finds_the_latest_for_a_source(flow: IncidentFlow) -> None:
    incident = declare(flow)
    for source, external_id in [("a", "1"), ("b", "2"), ("a", "3")]:
        flow.record_external(
            incident.id, system="gh", kind="issue", external_id=external_id, source=source, by="gh"
        )
    current = flow.get(incident.id)
    found = current.external_ref("gh", "issue", "a")
    assert found is not None
    assert found.external_id == "3"
    latest = current.external_ref("gh", "issue")
    assert latest is not None
    assert latest.external_id == "3"
    assert current.external_ref("gh", "comment") is None
    assert current.external_ref("slack", "issue") is None


def test_record_external_is_allowed_in_a_terminal_phase(flow: IncidentFlow) -> None:
    incident = declare(flow)
    flow.mark_false_positive(incident.id, reason="a test alert", by="alice")
    closed = flow.get(incident.id)
    after = flow.record_external(
        closed.id, system="slack", kind="archived", external_id="C0123", by="slack"
    )
    assert after.phase == closed.phase
    assert after.external_ref("slack", "archived") is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [("system", ""), ("kind", "  "), ("external_id", ""), ("external_id", "x" * 5000)],
)
def test_record_external_refuses_empty_or_huge_fields(
    flow: IncidentFlow, field: str, value: str
) -> None:
    incident = declare(flow)
    arguments = {"system": "slack", "kind": "channel", "external_id": "C1", field: value}
    with pytest.raises(InvalidFieldError) as caught:
        flow.record_external(incident.id, by="slack", **arguments)
    assert caught.value.field == field
    assert flow.get(incident.id).version == incident.version


def test_record_external_on_an_unknown_incident(flow: IncidentFlow) -> None:
    with pytest.raises(UnknownIncidentError):
        flow.record_external("nope", system="s", kind="k", external_id="1", by="p")


def test_concurrent_records_of_one_reference_record_it_once(tmp_path: object) -> None:
    """Two workers delivering the same event at once (a lease ran out) both record; the version
    check and the duplicate check keep one reference."""
    path = f"{tmp_path}/refs.db"
    clock = FakeClock(datetime(2024, 3, 1, 9, 0, tzinfo=UTC))
    flows = [
        IncidentFlow(
            store=SQLiteStore(path), clock=clock, entry_points=False, reminders=False, deliver=False
        )
        for _ in range(4)
    ]
    try:
        incident = declare(flows[0])
        barrier = threading.Barrier(len(flows))

        def record(flow: IncidentFlow) -> None:
            barrier.wait()
            flow.record_external(
                incident.id, system="slack", kind="channel", external_id="C9", by="slack"
            )

        threads = [threading.Thread(target=record, args=(f,)) for f in flows]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        refs = flows[0].get(incident.id).external_refs
        assert [ref.external_id for ref in refs] == ["C9"]
    finally:
        for flow in flows:
            flow.shutdown()


# ------------------------------------------------------------------ the hook's flow


class Channeler:
    """Makes one 'channel' per incident, recorded through the flow it is handed."""

    incident_flow_name = "channeler"

    def __init__(self) -> None:
        self.made: list[str] = []
        self.flows: list[IncidentFlow | None] = []

    @hookimpl
    def incident_flow_event(
        self, event: Event, incident: Incident, key: str, flow: IncidentFlow | None
    ) -> None:
        self.flows.append(flow)
        if isinstance(event, ExternalRefRecorded):
            return

        def make() -> tuple[str, str | None]:
            self.made.append(incident.id)
            return f"C-{len(self.made)}", None

        once(
            flow, incident.id, system="chat", kind="channel", by=self.incident_flow_name, make=make
        )


def test_the_event_hook_is_handed_the_flow(clock: FakeClock) -> None:
    plugin = Channeler()
    with IncidentFlow(clock=clock, plugins=[plugin], entry_points=False, reminders=False) as flow:
        incident = declare(flow)
        flow.assign(incident.id, "lead", "bob", by="alice")
        assert flow.drain(timeout=10)
        assert plugin.flows
        assert all(f is flow for f in plugin.flows)
        assert plugin.made == [incident.id]
        ref = flow.get(incident.id).external_ref("chat", "channel")
        assert ref is not None
        assert ref.by == "channeler"


def test_a_worker_built_without_a_flow_hands_none(clock: FakeClock) -> None:
    plugin = Channeler()
    with IncidentFlow(clock=clock, entry_points=False, reminders=False, deliver=False) as flow:
        incident = declare(flow)
        from incident_flow.plugins import PluginRegistry

        [notifier] = PluginRegistry([plugin], entry_points=False).notifiers
        with pytest.raises(PermanentDeliveryError, match="flow="):
            notifier.invoke(flow.history(incident.id)[0], incident, "k", None)


def test_check_plugin_hands_a_flow_and_replays_fault_incidents_in_it() -> None:
    plugin = Channeler()
    report = check_plugin(plugin, sequences=2, effects=lambda: plugin.made)
    assert report.ok, str(report)
    assert plugin.flows
    assert all(f is not None for f in plugin.flows)
    # One channel per incident the harness replayed, however often each event was delivered.
    assert len(plugin.made) == len(set(plugin.made))


def test_once_makes_nothing_when_make_fails(flow: IncidentFlow) -> None:
    incident = declare(flow)

    def make() -> tuple[str, str | None]:
        raise RetryableDeliveryError("vendor down")

    with pytest.raises(RetryableDeliveryError):
        once(flow, incident.id, system="s", kind="k", by="p", make=make)
    assert flow.get(incident.id).external_refs == ()


def test_once_on_an_unknown_incident_is_permanent(flow: IncidentFlow) -> None:
    with pytest.raises(PermanentDeliveryError, match="no incident"):
        once(flow, "nope", system="s", kind="k", by="p", make=lambda: ("1", None))


# ------------------------------------------------------------------ secrets and settings


def test_a_secret_never_shows_itself() -> None:
    secret = Secret("xoxb-123456789-abcdefgh")
    assert "xoxb" not in repr(secret)
    assert "xoxb" not in str(secret)
    assert "xoxb" not in f"{secret}"
    assert secret.reveal() == "xoxb-123456789-abcdefgh"
    assert secret == Secret("xoxb-123456789-abcdefgh")


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(AdapterConfigError):
        Secret(" ")


def test_env_setting_and_secret() -> None:
    environ = {"VENDOR_URL": " https://vendor.example ", "VENDOR_KEY": "k-1234567890"}
    assert env_setting("VENDOR_URL", environ=environ) == "https://vendor.example"
    assert env_setting("VENDOR_REGION", default="us", environ=environ) == "us"
    assert env_secret("VENDOR_KEY", environ=environ).reveal() == "k-1234567890"
    with pytest.raises(AdapterConfigError, match=r"VENDOR_TOKEN is not set.*the API key") as caught:
        env_secret("VENDOR_TOKEN", environ=environ, hint="the API key")
    assert caught.value.setting == "VENDOR_TOKEN"


def test_redact_takes_out_secrets_and_credentials() -> None:
    text = "sent Authorization: Bearer abcdefgh12345 with key s3cr3t-value and xoxb-1-2-3"
    cleaned = redact(text, [Secret("s3cr3t-value"), None])
    assert "abcdefgh12345" not in cleaned
    assert "s3cr3t-value" not in cleaned
    assert "xoxb-1-2-3" not in cleaned
    assert "Bearer ***" in cleaned


# ------------------------------------------------------------------ vendor answers


def test_retry_after_in_seconds_and_as_a_date() -> None:
    now = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 1.5 ") == 1.5
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(later, now=now) == 30.0
    earlier = (now - timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(earlier, now=now) == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "Key format is not valid!"}, "Key format is not valid!"),
        ({"ok": False, "error": "channel_not_found"}, "channel_not_found"),
        (
            {"error": {"message": "Invalid Input", "errors": ["routing_key missing"]}},
            "Invalid Input",
        ),
        (
            {"message": "Validation Failed", "errors": [{"message": "title is blank"}]},
            "title is blank",
        ),
        ("plain text", "plain text"),
        (None, "fallback"),
    ],
)
def test_vendor_message(body: object, expected: str) -> None:
    assert expected in vendor_message(body, "fallback")


def test_raise_for_status_maps_vendor_answers() -> None:
    raise_for_status("v", "GET /x", 200, {})
    with pytest.raises(RetryableDeliveryError) as limited:
        raise_for_status("v", "POST /x", 429, {"retry-after": "7"}, {"message": "slow down"})
    assert limited.value.retry_after == 7
    assert "v POST /x: HTTP 429: slow down" in str(limited.value)
    for status in (408, 500, 502, 503, 504, 599):
        with pytest.raises(RetryableDeliveryError):
            raise_for_status("v", "POST /x", status, {})
    for status in (400, 401, 403, 404, 409, 422):
        with pytest.raises(PermanentDeliveryError, match="bad field"):
            raise_for_status("v", "POST /x", status, {}, {"message": "bad field"})


def test_raise_for_status_keeps_secrets_out_of_the_message() -> None:
    key = Secret("genie-key-0123456789")
    with pytest.raises(PermanentDeliveryError) as caught:
        raise_for_status(
            "opsgenie",
            "POST /v2/alerts",
            401,
            {},
            {"message": f"bad key {key.reveal()}"},
            secrets=[key],
        )
    assert key.reveal() not in str(caught.value)
