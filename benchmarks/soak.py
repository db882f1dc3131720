"""``python -m benchmarks.soak``: the crash test at length (hundreds of SIGKILLs).

Runs the kill/restart cycles of ``tests/test_crash.py`` (see ``benchmarks/crashkit.py``) against
an SQLite file in a temporary directory, or a fresh schema of a PostgreSQL server
(``--conninfo``, by default ``$INCIDENT_FLOW_TEST_POSTGRES`` or the test server), then prints
the counts: kills, commands acknowledged, events committed, deliveries received, redeliveries,
and every violation. Exits with status 1 when there is any violation.

Options: ``--store sqlite|postgres`` (default sqlite), ``--kills N`` (default 200), ``--seed S``
(default random; printed, to run the same kill times and commands again), ``--keep DIR`` (work in
DIR and keep the files: the store, acks, receipts, the children's stderr).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.crashkit import Report, StoreSpec, postgres_schema, run

DEFAULT_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="Kill a writer with SIGKILL again and again; check nothing committed is lost.",
    )
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--kills", type=int, default=200, help="kill/restart cycles (200)")
    parser.add_argument("--seed", type=int, default=None, help="seed (random by default)")
    parser.add_argument("--conninfo", default=None, help="PostgreSQL conninfo")
    parser.add_argument("--keep", metavar="DIR", default=None, help="work in DIR and keep it")
    return parser


def _soak(store: str, workdir: Path, *, kills: int, seed: int, conninfo: str) -> Report:
    def log(message: str) -> None:
        print(f"  {message}", flush=True)

    if store == "sqlite":
        return run(
            StoreSpec.sqlite(workdir / "incidents.db"), workdir, kills=kills, seed=seed, log=log
        )
    with postgres_schema(conninfo) as spec:
        return run(spec, workdir, kills=kills, seed=seed, log=log)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    conninfo = args.conninfo or os.environ.get("INCIDENT_FLOW_TEST_POSTGRES") or DEFAULT_CONNINFO
    print(f"soak: store={args.store} kills={args.kills} seed={seed}", flush=True)
    started = time.monotonic()
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        report = _soak(args.store, workdir, kills=args.kills, seed=seed, conninfo=conninfo)
    else:
        with tempfile.TemporaryDirectory(prefix="incident-flow-soak-") as tmp:
            report = _soak(args.store, Path(tmp), kills=args.kills, seed=seed, conninfo=conninfo)
    print(f"kills:                  {report.kills}")
    print(f"commands acknowledged:  {report.acks}")
    print(f"events committed:       {report.events}")
    print(f"deliveries:             {report.deliveries}")
    print(f"redeliveries:           {report.redeliveries}")
    print(f"violations:             {len(report.violations)}")
    for violation in report.violations:
        print(f"  {violation}")
    print(f"({time.monotonic() - started:.0f} s; seed {seed})")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
