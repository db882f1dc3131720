"""``incident-flow-slack``: the manifest, the settings it refuses to start without, and
``serve`` answering a signed request over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import incident_flow_slack
import pytest
import yaml
from incident_flow_slack.app import EVENTS_PATH
from incident_flow_slack.cli import main, manifest
from incident_flow_slack.commands import COMMAND, USAGE_HINT
from slack_app_fixtures import (
    BOT_TOKEN,
    LEAD,
    REPORTER,
    SIGNING_SECRET,
    command_body,
    sign,
    submission_body,
)

from incident_flow import IncidentFlow
from incident_flow.store import open_store
from incident_flow.testing.vendor_api import VendorAPI, default_specs_dir

PACKAGE = Path(incident_flow_slack.__file__).parent

# The bot scopes each Web API method needs today (api.slack.com/methods/<method>); any one of
# a tuple will do. Slack's 2021 description names older scopes (channels:write), so the
# current ones are listed here; a method the package starts using must be added.
SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "bookmarks.add": ("bookmarks:write",),
    "chat.delete": ("chat:write",),
    "chat.getPermalink": (),
    "chat.postEphemeral": ("chat:write",),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "conversations.archive": ("channels:manage", "groups:write"),
    "conversations.create": ("channels:manage", "groups:write"),
    "conversations.history": ("channels:history", "groups:history"),
    "conversations.info": ("channels:read", "groups:read"),
    "conversations.invite": ("channels:manage", "groups:write"),
    "conversations.join": ("channels:join",),
    "conversations.list": ("channels:read", "groups:read"),
    "conversations.members": ("channels:read", "groups:read"),
    "conversations.open": ("im:write", "mpim:write"),
    "conversations.rename": ("channels:manage", "groups:write"),
    "conversations.setPurpose": ("channels:manage", "groups:write"),
    "conversations.setTopic": ("channels:manage", "groups:write"),
    "conversations.unarchive": ("channels:manage", "groups:write"),
    "pins.add": ("pins:write",),
    "reactions.add": ("reactions:write",),
    "usergroups.list": ("usergroups:read",),
    "usergroups.users.list": ("usergroups:read",),
    "users.info": ("users:read",),
    "users.list": ("users:read",),
    "users.lookupByEmail": ("users:read.email",),
    "views.open": (),
    "views.publish": (),
    "views.push": (),
    "views.update": (),
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings of a complete HTTP install (the Web API where nothing listens)."""
    for name in list(os.environ):
        if name.startswith("SLACK_") or name == "INCIDENT_FLOW_SLACK_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")


def _printed_manifest(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["manifest", *argv]) == 0
    loaded: dict[str, Any] = yaml.safe_load(capsys.readouterr().out)
    return loaded


# -- the manifest --------------------------------------------------------------------------------


def test_manifest_prints_valid_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    loaded = _printed_manifest(capsys)
    assert loaded["_metadata"]["major_version"] == 2
    assert loaded["features"]["bot_user"]["display_name"]
    assert len(loaded["display_information"]["name"]) <= 35  # Slack's limits
    assert len(loaded["display_information"]["description"]) <= 140


def test_manifest_has_every_slash_command_the_app_handles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    loaded = _printed_manifest(capsys)
    [command] = loaded["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert command["url"] == f"https://YOUR-HOST{EVENTS_PATH}"
    assert command["usage_hint"] == USAGE_HINT
    assert command["should_escape"] is True  # mentions arrive as user ids
    settings = loaded["settings"]
    assert settings["interactivity"] == {
        "is_enabled": True,
        "request_url": f"https://YOUR-HOST{EVENTS_PATH}",
    }
    assert settings["socket_mode_enabled"] is False
    source = (PACKAGE / "app.py").read_text(encoding="utf-8")
    handled = set(re.findall(r"app\.command\((\w+)\)", source))
    assert handled == {"COMMAND"}


def _web_api_methods_used() -> set[str]:
    """Every Slack Web API method the package's code names, as ``"chat.postMessage"`` or as
    the SDK's ``chat_postMessage``."""
    described = json.loads(
        (default_specs_dir() / "slack_web_openapi_v2.json").read_text(encoding="utf-8")
    )["paths"]
    known = {path.lstrip("/") for path in described} | set(SCOPES)
    used: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        for word in re.findall(r"[A-Za-z]\w*(?:\.\w+)+|[a-z]+_\w+", path.read_text("utf-8")):
            parts = re.split(r"[._]", word)
            for start in range(len(parts)):
                for end in range(start + 2, len(parts) + 1):
                    if ".".join(parts[start:end]) in known:
                        used.add(".".join(parts[start:end]))
    return used


def test_manifest_scopes_cover_the_web_api_methods_used(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scopes = set(_printed_manifest(capsys)["oauth_config"]["scopes"]["bot"])
    used = _web_api_methods_used()
    assert "views.open" in used
    assert "chat.postMessage" in used
    unlisted = sorted(method for method in used if method not in SCOPES)
    assert not unlisted, f"add the scopes these methods need to SCOPES: {unlisted}"
    missing = {m: SCOPES[m] for m in used if SCOPES[m] and not scopes.intersection(SCOPES[m])}
    assert not missing, f"the manifest lacks a scope for {missing}"
    assert "commands" in scopes


def test_manifest_with_the_servers_address(capsys: pytest.CaptureFixture[str]) -> None:
    loaded = _printed_manifest(capsys, "--url", "https://incidents.example.com/")
    assert loaded["features"]["slash_commands"][0]["url"] == (
        "https://incidents.example.com/slack/events"
    )
    assert loaded["settings"]["interactivity"]["request_url"] == (
        "https://incidents.example.com/slack/events"
    )


def test_manifest_for_socket_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert _printed_manifest(capsys, "--socket-mode")["settings"]["socket_mode_enabled"] is True


def test_manifest_refuses_an_address_slack_would_not_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["manifest", "--url", "http://incidents.example.com"]) == 2
    assert "https://" in capsys.readouterr().err


def test_manifest_function_is_the_printed_text(capsys: pytest.CaptureFixture[str]) -> None:
    main(["manifest"])
    assert capsys.readouterr().out == manifest()


# -- settings ------------------------------------------------------------------------------------


def test_serve_without_the_signing_secret_exits_2(
    slack_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    database = tmp_path / "incidents.db"
    assert main(["serve", "--db", str(database), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: SLACK_SIGNING_SECRET is not set")
    assert "Traceback" not in err
    assert not database.exists()


def test_serve_without_the_bot_token_exits_2(
    slack_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    assert main(["serve", "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN is not set" in err
    assert SIGNING_SECRET not in err


def test_socket_without_the_app_token_exits_2_naming_it(
    slack_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["socket", "--db", str(tmp_path / "x.db")]) == 2
    assert "SLACK_APP_TOKEN is not set" in capsys.readouterr().err


def test_a_malformed_setting_exits_2(
    slack_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SLACK_TIMEOUT", "soon")
    assert main(["serve", "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert BOT_TOKEN not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "http"],
        ["serve", "--port", "70000"],
        ["launch"],
        [],
    ],
)
def test_a_malformed_command_line_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_a_process_that_does_not_import_exits_2(
    slack_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--db", str(tmp_path / "x.db"), "--process", "no_such_module:PROCESS"]
    assert main(argv) == 2
    assert "cannot load the process no_such_module:PROCESS" in capsys.readouterr().err


def test_a_process_must_be_a_process(
    slack_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--db", str(tmp_path / "x.db"), "--process", "os:sep"]
    assert main(argv) == 2
    assert "not an incident_flow Process" in capsys.readouterr().err


# -- serve, end to end ---------------------------------------------------------------------------


class _Server:
    """``incident-flow-slack serve`` in a child process, on a free port."""

    def __init__(self, database: Path, api_url: str) -> None:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("SLACK_") and "proxy" not in name.lower()
        }
        env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=api_url,
            SLACK_TIMEOUT="2",
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "incident_flow_slack.cli",
                "serve",
                "--db",
                str(database),
                "--port",
                "0",
                "--no-entry-points",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        found = threading.Event()
        self.url = ""

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                match = re.search(r"answering /incident at (http://\S+)", line)
                if match:
                    self.url = match.group(1).rstrip(";")
                    found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(30):
            self.process.kill()
            self.process.wait()
            self._reader.join(5)
            if self.process.stderr is not None:
                self.process.stderr.close()
            raise AssertionError("serve did not start:\n" + "".join(self.lines))

    def post(self, body: str, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self._reader.join(5)
            if self.process.stderr is not None:
                self.process.stderr.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Server, VendorAPI, Path]]:
    database = tmp_path / "incidents.db"
    with VendorAPI.from_spec("slack_web_openapi_v2.json", strict=False) as api:
        server = _Server(database, api.base_url + "/")
        try:
            yield server, api, database
        finally:
            if server.process.poll() is None:
                server.stop()


def test_serve_answers_signed_requests_and_refuses_the_rest(
    served: tuple[_Server, VendorAPI, Path],
) -> None:
    server, _, _ = served
    body = command_body("help")
    headers = sign(body)
    status, text = server.post(body, headers)
    assert status == 200
    assert "`/incident lead @user`" in json.loads(text)["text"]
    assert server.post(body, headers)[0] == 401  # replayed
    assert server.post(command_body("help"), {"content-type": "text/plain"})[0] == 401
    other = command_body("help")
    assert server.post(other, sign(other, secret="guessed"))[0] == 401
    assert server.stop() == 0
    log = "".join(server.lines)
    assert BOT_TOKEN not in log
    assert SIGNING_SECRET not in log


def test_serve_declares_and_the_reactions_make_the_channel(
    served: tuple[_Server, VendorAPI, Path],
) -> None:
    """The form declares into the database, the flow's worker delivers the declaration to the
    Slack plugin, which makes the channel; a command typed there then finds the incident."""
    server, api, database = served
    body = submission_body(title="Search is down", severity="major", impact="no")
    status, text = server.post(body, sign(body))
    assert status == 200, text
    assert json.loads(text)["response_action"] == "update"

    def channel() -> str | None:
        created = [r for r in api.requests_to("POST", "/conversations.create") if r.status == 200]
        return "made" if created else None

    deadline_ok = _wait(channel)
    assert deadline_ok, "".join(server.lines)
    flow = IncidentFlow(
        store=open_store(str(database), create=False),
        entry_points=False,
        deliver=False,
        reminders=False,
    )
    try:
        ref = _wait(lambda: _channel_ref(flow))
        assert ref is not None, "".join(server.lines)
        typed = command_body(f"lead <@{LEAD}|lee>", channel=ref, user=REPORTER)
        status, text = server.post(typed, sign(typed))
        assert status == 200
        assert "is now the Incident Lead" in json.loads(text)["text"]
        [incident] = flow.list()
        assert flow.get(incident.id).lead == LEAD
    finally:
        flow.shutdown()
    assert server.stop() == 0


def _channel_ref(flow: IncidentFlow) -> str | None:
    incidents = flow.list()
    if not incidents:
        return None
    ref = flow.get(incidents[0].id).external_ref("slack", "channel")
    return None if ref is None else ref.external_id


def _wait(condition: Any, timeout: float = 20.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    return None
