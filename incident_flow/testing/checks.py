"""``check_process``: what a process author should know before running it for real.

It walks the process (:func:`~incident_flow.testing.paths.explore`) and reports, as
:class:`Finding` values with stable kinds:

``unreachable-phase``
    no sequence of allowed commands reaches the phase;
``dead-end-phase``
    a phase that is not terminal, but that no allowed command leaves;
``guard-never-met`` / ``guard-never-refuses``
    a guard of an action that the walk never saw passing (the action can never be taken that
    way) or never saw refusing (it guards nothing);
``transition-not-covered``
    a transition of the decision table that no path takes;
``guard-raised``
    a guard that raised instead of answering, with the path that reached it;
``walk-truncated``
    the walk hit ``max_states`` before it was done: the other findings may be false alarms.

An empty list means the process is sound as far as the walk can tell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from incident_flow.process import Process
from incident_flow.testing.commands import PEOPLE, Declaration
from incident_flow.testing.paths import DECLARATIONS, Path, explore

__all__ = ["Finding", "check_process"]


@attrs.frozen
class Finding:
    """One thing :func:`check_process` found: its ``kind``, what it is about, and why."""

    kind: str
    subject: str
    message: str
    path: Path | None = None
    """For ``guard-raised``: how the walk got there."""

    def __str__(self) -> str:
        text = f"{self.kind}: {self.subject}: {self.message}"
        return f"{text} (after: {self.path})" if self.path is not None else text


def check_process(
    process: Process,
    *,
    declarations: Sequence[Declaration] = DECLARATIONS,
    people: Sequence[str] = PEOPLE,
    arguments: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    max_states: int = 20_000,
) -> list[Finding]:
    """Walk ``process`` and return what is wrong with it (see the module docstring).

    The options are those of :func:`~incident_flow.testing.paths.explore`; give ``arguments``
    for a team's own actions whose guards read arguments.
    """
    exploration = explore(
        process,
        declarations=declarations,
        people=people,
        arguments=arguments,
        max_states=max_states,
    )
    coverage = exploration.coverage
    findings: list[Finding] = []
    if exploration.truncated:
        findings.append(
            Finding(
                "walk-truncated",
                process.name,
                f"the walk stopped after {max_states} states; raise max_states",
            )
        )
    for failure in exploration.guard_failures:
        findings.append(
            Finding(
                "guard-raised",
                failure.guard,
                f"raised {failure.error} when asked about {failure.action} in {failure.phase}",
                failure.path,
            )
        )
    for phase, seen in coverage.phases.items():
        if not seen:
            findings.append(
                Finding("unreachable-phase", phase, "no sequence of allowed commands reaches it")
            )
    left = {source for source, _, dest in coverage.transitions if dest != source}
    taken_out = {
        source
        for (source, _, dest), seen in coverage.transitions.items()
        if seen and dest != source
    }
    for spec in process.phases:
        if spec.terminal:
            continue
        if spec.name not in left:
            findings.append(
                Finding(
                    "dead-end-phase",
                    spec.name,
                    "no action leads out of it and it is not terminal",
                )
            )
        elif coverage.phases.get(spec.name) and spec.name not in taken_out:
            findings.append(
                Finding(
                    "dead-end-phase",
                    spec.name,
                    "it is reached, but the guards of every action out of it always refuse",
                )
            )
    for (action, guard), seen in coverage.guards_passed.items():
        if not seen:
            findings.append(
                Finding(
                    "guard-never-met",
                    guard,
                    f"never met for {action}: {action} can never be taken where it applies",
                )
            )
    for (action, guard), seen in coverage.guards_refused.items():
        if not seen and coverage.guards_passed[(action, guard)]:
            findings.append(
                Finding(
                    "guard-never-refuses",
                    guard,
                    f"never refused {action} wherever it was asked: it guards nothing there",
                )
            )
    for (source, action, dest), seen in coverage.transitions.items():
        if not seen and coverage.phases.get(source):
            findings.append(
                Finding(
                    "transition-not-covered",
                    f"{source} --{action}--> {dest}",
                    "no path takes it: its guards never all hold in that phase",
                )
            )
    return findings
