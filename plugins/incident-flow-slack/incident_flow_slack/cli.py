"""``incident-flow-slack``: answer ``/incident`` from Slack, or print the app's manifest.

Subcommands:

``serve [--db DB] [--host H] [--port N] [--process MODULE:ATTR] [--no-entry-points]``
    Answer Slack's requests over HTTP at ``http://H:N/slack/events`` (put an HTTPS proxy in
    front: Slack only calls HTTPS addresses). A threaded WSGI server (``wsgiref``, with Bolt's
    WSGI adapter) over an :class:`~incident_flow.IncidentFlow` on ``DB``, whose delivery worker
    hands every event to the Slack reactions plugin (and to the other installed adapters).
    Needs ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET``.
``socket [--db DB] [--process MODULE:ATTR] [--no-entry-points]``
    The same over Socket Mode (no public address needed). Needs ``SLACK_BOT_TOKEN`` and
    ``SLACK_APP_TOKEN``.
``manifest [--url URL] [--socket-mode]``
    Print the Slack app manifest, with the request URLs pointing at ``URL``.

``DB`` is an SQLite file's path (made if missing; default ``incident-flow.db``) or a
PostgreSQL connection string. Settings come from the environment (see
:mod:`incident_flow_slack.config`). Both servers stop on SIGINT or SIGTERM, after handing the
deliveries in progress to the outbox.

Exit status: 0 on success, 1 when the database cannot be opened, 2 for a malformed command
line or a missing or malformed setting (the message names it).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

from incident_flow.errors import AdapterConfigError, IncidentFlowError
from incident_flow.flow import IncidentFlow
from incident_flow.plugins import PluginRegistry, plugin_name
from incident_flow.process import HANDBOOK, Process
from incident_flow.store import open_store
from incident_flow_slack.app import EVENTS_PATH, build_app
from incident_flow_slack.config import SlackConfig
from incident_flow_slack.reactions import SlackPlugin

__all__ = ["DEFAULT_DB", "DEFAULT_PORT", "main", "manifest"]

DEFAULT_DB = "incident-flow.db"
DEFAULT_PORT = 3000
USAGE_ERROR = 2
"""Exit status for a malformed command line or setting."""
PLACEHOLDER = "https://YOUR-HOST"

logger = logging.getLogger("incident_flow_slack.cli")


class CommandError(Exception):
    """A command line that parsed but names something that cannot be used (a --process that
    does not import)."""


def manifest(url: str | None = None, *, socket_mode: bool = False) -> str:
    """The app manifest (YAML), with its request URLs at ``url`` when given.

    Raises:
        CommandError: ``url`` is not an https address (Slack calls nothing else).
    """
    text = importlib.resources.files("incident_flow_slack").joinpath("manifest.yml")
    content = text.read_text(encoding="utf-8")
    if url is not None:
        if not url.startswith("https://") or len(url) <= len("https://"):
            raise CommandError(f"--url must be an https:// address, not {url!r}")
        content = content.replace(PLACEHOLDER, url.rstrip("/"))
    if socket_mode:
        content = content.replace("socket_mode_enabled: false", "socket_mode_enabled: true")
    return content


def _import_process(spec: str) -> Process:
    module_name, _, attribute = spec.partition(":")
    try:
        process = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise CommandError(f"cannot load the process {spec}: {error}") from error
    if not isinstance(process, Process):
        raise CommandError(f"{spec} is a {type(process).__name__}, not an incident_flow Process")
    return process


def _registry(config: SlackConfig, entry_points: bool) -> PluginRegistry:
    """The installed adapters, with the Slack plugin built from ``config``.

    The installed ``slack`` entry point reads the same environment; it is replaced by this
    one so that the plugin and the app surely share their settings.
    """
    plugin = SlackPlugin(config)
    name = plugin_name(plugin)
    registry = PluginRegistry(entry_points=entry_points)
    if registry.manager.get_plugin(name) is not None:
        registry.manager.unregister(name=name)
    for failure in registry.failures:
        if failure.name != name:
            print(f"warning: plugin {failure.name} not loaded: {failure.error}", file=sys.stderr)
    registry.register(plugin)
    return registry


@contextmanager
def _flow(args: argparse.Namespace, config: SlackConfig) -> Iterator[IncidentFlow]:
    process = HANDBOOK if args.process is None else _import_process(args.process)
    registry = _registry(config, not args.no_entry_points)
    store = open_store(args.db, schema=args.schema)
    flow = IncidentFlow(process=process, store=store, plugins=registry)
    try:
        yield flow
    finally:
        flow.shutdown()  # lets deliveries in hand finish, then closes the store


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    previous = {
        signum: signal.signal(signum, lambda *_: stop())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so that a slow command never holds up the next one."""

    daemon_threads = True


class _LoggingHandler(WSGIRequestHandler):
    """Request lines go to the log, not to standard error."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


def _serve(args: argparse.Namespace) -> int:
    config = SlackConfig.from_env()
    if config.signing_secret is None:
        raise AdapterConfigError(
            "SLACK_SIGNING_SECRET is not set; serving over HTTP needs the app's signing "
            "secret (Basic Information > App Credentials) to verify requests from Slack",
            setting="SLACK_SIGNING_SECRET",
        )
    with _flow(args, config) as flow:
        app = build_app(flow, config)
        server = make_server(
            args.host,
            args.port,
            SlackRequestHandler(app, path=EVENTS_PATH),
            server_class=_ThreadingWSGIServer,
            handler_class=_LoggingHandler,
        )
        host, port = server.server_address[:2]
        print(
            f"answering /incident at http://{host!s}:{port}{EVENTS_PATH}; "
            "stop with Ctrl-C or SIGTERM",
            file=sys.stderr,
            flush=True,
        )
        # shutdown() waits for serve_forever() to return: call it from another thread.
        with _stop_on_signals(lambda: threading.Thread(target=server.shutdown).start()):
            try:
                server.serve_forever(poll_interval=0.5)
            finally:
                server.server_close()
    print("stopped", file=sys.stderr)
    return 0


def _socket(args: argparse.Namespace) -> int:
    config = SlackConfig.from_env()
    if config.app_token is None:
        raise AdapterConfigError(
            "SLACK_APP_TOKEN is not set; Socket Mode needs an app-level token (xapp-…) with "
            "the connections:write scope (Basic Information > App-Level Tokens)",
            setting="SLACK_APP_TOKEN",
        )
    with _flow(args, config) as flow:
        app = build_app(flow, config, socket_mode=True)
        handler = SocketModeHandler(app, app_token=config.app_token.reveal())
        stopped = threading.Event()
        with _stop_on_signals(stopped.set):
            handler.connect()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
            print("answering /incident over Socket Mode; stop with Ctrl-C", file=sys.stderr)
            try:
                stopped.wait()
            finally:
                handler.close()  # type: ignore[no-untyped-call]
    print("stopped", file=sys.stderr)
    return 0


def _manifest(args: argparse.Namespace) -> int:
    print(manifest(args.url, socket_mode=args.socket_mode), end="")
    return 0


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), not {value!r}")
    return port


def _flow_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="DB",
        help=f"SQLite file (made if missing) or PostgreSQL connection string "
        f"(default: {DEFAULT_DB})",
    )
    command.add_argument("--schema", default="public", help="the PostgreSQL schema")
    command.add_argument(
        "--process", metavar="MODULE:ATTR", help="a team's Process (default: the handbook's)"
    )
    command.add_argument(
        "--no-entry-points",
        action="store_true",
        help="deliver to the Slack plugin only, not to the other installed adapters",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incident-flow-slack", description="Run incident_flow incidents from Slack."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="answer /incident over HTTP")
    _flow_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    serve.set_defaults(run=_serve)

    socket = commands.add_parser("socket", help="answer /incident over Socket Mode")
    _flow_options(socket)
    socket.set_defaults(run=_socket)

    show = commands.add_parser("manifest", help="print the Slack app manifest")
    show.add_argument("--url", help="the public https:// address of `serve`")
    show.add_argument("--socket-mode", action="store_true", help="for an app run with `socket`")
    show.set_defaults(run=_manifest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``incident-flow-slack`` with ``argv`` (the process's arguments by default) and
    return its exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else USAGE_ERROR
    if args.command in ("serve", "socket"):
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (AdapterConfigError, CommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (IncidentFlowError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
