"""The documentation agrees with the code: every hook, guard and error is documented, the
diagram is the process's own, the examples run and the site builds without a warning."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from incident_flow import HANDBOOK, Transition, errors, hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

HOOK_HEADING = re.compile(r"^## (incident_flow_\w+)\((.*)\)\s*$", re.MULTILINE)
DIAGRAM = re.compile(
    r"<!-- diagram:start -->\n```mermaid\n(.*?)```\n<!-- diagram:end -->", re.DOTALL
)
CODE_BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
RUNNABLE_PAGES = [
    "index.md",
    "communications.md",
    "reminders.md",
    "postmortem.md",
    "audit.md",
    "hooks.md",
    "adapters.md",
    "process.md",
    "api.md",
    "stores.md",
    "delivery.md",
    "testing.md",
]


def read(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


def hookspec_signatures() -> dict[str, str]:
    """Every hook a plugin can implement, with its argument list as the docs write it."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: ", ".join(inspect.signature(function).parameters)
        for name, function in vars(hookspecs).items()
        if name.startswith("incident_flow_") and callable(function) and hasattr(function, marker)
    }


def documented_hooks() -> dict[str, str]:
    return dict(HOOK_HEADING.findall(read("hooks.md")))


def python_blocks(page: str) -> list[tuple[int, str]]:
    """The ``python`` code blocks of a page, with the line each starts on."""
    text = read(page)
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(2))
        for match in CODE_BLOCK.finditer(text)
        if match.group(1) == "python"
    ]


def test_there_are_hooks_to_document() -> None:
    assert "incident_flow_event" in hookspec_signatures()


@pytest.mark.parametrize("hook", sorted(hookspec_signatures()))
def test_every_hook_has_a_section_headed_by_its_signature(hook: str) -> None:
    documented = documented_hooks()
    assert hook in documented, f"docs/hooks.md has no section '## {hook}(...)'"
    assert documented[hook] == hookspec_signatures()[hook], (
        f"the heading of {hook} lists ({documented[hook]}); "
        f"the hookspec takes ({hookspec_signatures()[hook]})"
    )


def test_every_hook_section_is_a_hook_that_exists() -> None:
    unknown = set(documented_hooks()) - set(hookspec_signatures())
    assert not unknown, f"docs/hooks.md documents hooks that have no hookspec: {sorted(unknown)}"


def test_the_process_diagram_is_the_handbook_process() -> None:
    match = DIAGRAM.search(read("process.md"))
    assert match is not None, "docs/process.md has no mermaid block between the diagram markers"
    assert match.group(1) == HANDBOOK.to_mermaid()


def test_every_guard_of_the_handbook_is_documented_with_its_section() -> None:
    page = read("process.md")
    used = {name for t in HANDBOOK.transitions for name in (*t.guards, *t.warnings)}
    assert used
    for name in sorted(used):
        assert f"`{name}`" in page, f"guard {name} is not in docs/process.md"
        assert HANDBOOK.guards[name].handbook_ref in page


def transition_row(transition: Transition) -> str:
    def names(guards: tuple[str, ...]) -> str:
        return ", ".join(f"`{name}`" for name in guards) or "—"

    return (
        f"| `{transition.action}` | {', '.join(transition.sources)} | {transition.dest or '—'} "
        f"| {names(transition.guards)} | {names(transition.warnings)} |"
    )


@pytest.mark.parametrize("transition", HANDBOOK.transitions, ids=lambda t: t.action)
def test_every_transition_of_the_handbook_is_in_the_actions_table(transition: Transition) -> None:
    assert transition_row(transition) in read("process.md").splitlines()


def test_the_actions_table_has_no_transition_the_handbook_lacks() -> None:
    section = read("process.md").split("## Actions and their guards", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert sorted(rows) == sorted(transition_row(t) for t in HANDBOOK.transitions)


def test_every_error_is_in_the_api_page() -> None:
    page = read("api.md")
    missing = [name for name in errors.__all__ if f"`{name}`" not in page]
    assert not missing, f"docs/api.md does not mention {missing}"


def test_the_changelog_page_is_the_changelog() -> None:
    assert read("changelog.md") == (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


EXAMPLES = [(page, line, code) for page in RUNNABLE_PAGES for line, code in python_blocks(page)]


@pytest.mark.parametrize(
    ("page", "line", "code"), EXAMPLES, ids=[f"{page}:{line}" for page, line, _ in EXAMPLES]
)
def test_python_examples_run(page: str, line: int, code: str) -> None:
    """Each example runs on its own, in a fresh namespace, as a reader would paste it."""
    namespace = {"__name__": f"docs_{page.removesuffix('.md')}_line_{line}"}
    exec(compile(code, f"docs/{page}:{line}", "exec"), namespace)


@pytest.mark.parametrize("page", ["index.md", "hooks.md"])
def test_pages_have_examples(page: str) -> None:
    assert python_blocks(page)


def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    if (
        importlib.util.find_spec("mkdocs") is None
        or importlib.util.find_spec("mkdocstrings") is None
    ):
        pytest.skip("mkdocs and mkdocstrings are not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"


def test_every_cli_command_is_documented() -> None:
    import argparse

    from incident_flow.cli import _parser

    subparsers = next(
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    text = read("cli.md")
    for name in subparsers.choices:
        assert f"$ incident-flow {name}" in text, f"docs/cli.md does not show `{name}`"
