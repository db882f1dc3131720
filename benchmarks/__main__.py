"""``python -m benchmarks``: run the cases and print the table.

Options: ``--quick`` (about a minute), ``--case NAME`` (repeatable; a name or number from
``--list``), ``--markdown`` (the table as Markdown), ``--write docs/performance.md`` (also put
that table between the page's results markers), ``--profile`` (after the table, profile
incident_flow's side of every case that missed its target).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from benchmarks.cases import CASES
from benchmarks.harness import Case, Mode, Result, Row, Settings, Unit, render


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="incident_flow's benchmark cases, each against a baseline in the same run.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, 3 repeats (~1 minute)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (for the tests)")
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this case (name or number; repeat for several)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile (pyinstrument) incident_flow's side of each case that missed a target",
    )
    parser.add_argument(
        "--write",
        metavar="PATH",
        help="also put the Markdown table between the results markers of PATH "
        "(docs/performance.md)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser


def select(names: Sequence[str]) -> list[Case]:
    """The cases called ``names`` (by name or number), in order; all when ``names`` is empty.

    Raises:
        SystemExit: a name is not a case.
    """
    if not names:
        return list(CASES)
    wanted = {name.strip().lower() for arg in names for name in arg.split(",") if name.strip()}
    known = {case.name for case in CASES} | {str(case.number) for case in CASES}
    unknown = sorted(wanted - known)
    if unknown:
        choices = ", ".join(f"{case.number}/{case.name}" for case in CASES)
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; cases: {choices}")
    return [case for case in CASES if case.name in wanted or str(case.number) in wanted]


def profile(case: Case, settings: Settings, *, lines: int = 14) -> str:
    """Profile the case's incident_flow workload; return the top functions by own time."""
    if case.workload is None:
        return f"{case.number} {case.title}: no workload to profile\n"
    try:
        from pyinstrument import Profiler
    except ImportError:  # pragma: no cover - pyinstrument is in the bench extra
        return "pyinstrument is not installed (pip install -e '.[bench]')\n"
    body, cleanup = case.workload(settings)
    try:
        body()  # warm-up
        profiler = Profiler(interval=0.0002)
        profiler.start()
        body()
        profiler.stop()
    finally:
        cleanup()
    text = profiler.output_text(unicode=True, flat=True, time="percent_of_total")
    kept = [line for line in text.splitlines() if line.strip()[:1].isdigit()]  # "12.3% name"
    header = f"{case.number} {case.title}: top functions by own time (pyinstrument, main thread)"
    return "\n".join([header, *kept[:lines]]) + "\n"


START, END = "<!-- results:start -->", "<!-- results:end -->"


def write(path: Path, table: str) -> None:
    """Replace what lies between the results markers of ``path`` with ``table``.

    Raises:
        SystemExit: ``path`` lacks the markers.
    """
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{path} has no {START} … {END} markers")
    path.write_text(f"{head}{START}\n{table}{END}{tail}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected cases in this process and print the table; 1 if a case raised."""
    args = _parser().parse_args(argv)
    if args.list:
        for case in CASES:
            print(f"{case.number}  {case.name:<10} {case.title}")
        return 0
    mode = Mode.SMOKE if args.smoke else Mode.QUICK if args.quick else Mode.FULL
    settings = Settings.for_mode(mode)
    results: list[tuple[Case, Result]] = []
    began = time.monotonic()
    failed = False
    for case in select(args.case):
        print(f"running {case.number} {case.title}…", file=sys.stderr, flush=True)
        case_began = time.monotonic()
        try:
            result = case.run(settings)
        except Exception as error:  # one broken case must not hide the others' figures
            traceback.print_exc()
            failed = True
            result = Result(
                rows=[
                    Row(
                        f"{case.number} {case.title}",
                        "the case raised",
                        Unit.NS,
                        None,
                        ratio_text="error",
                        note=f"{type(error).__name__}: {error}".splitlines()[0],
                    )
                ]
            )
        results.append((case, result))
        print(f"  {time.monotonic() - case_began:.1f} s", file=sys.stderr, flush=True)
    print(f"all cases: {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)
    print(render(results, settings, markdown=args.markdown), end="")
    if args.write:
        write(Path(args.write), render(results, settings, markdown=True))
    if args.profile:
        missed = [case for case, result in results if any(r.passed is False for r in result.rows)]
        for case in missed:
            print()
            print(profile(case, settings), end="")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
