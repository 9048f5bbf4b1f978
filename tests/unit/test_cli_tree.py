"""The ``cdc`` command tree is an interface: scripts, runbooks and the deploy assets call its commands by
name and option. This snapshot holds every command path with its arguments and options (type, default,
flags) and what ``cdc <path> --help`` prints, so a refactoring of the command modules cannot change any of
it unnoticed.

A deliberate change (a new option, a new command, a reworded help text) rewrites the snapshot:
``.venv/bin/python -m tests.unit.test_cli_tree`` and commit `cli_tree.txt` with the change.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from cdc.cli import cli

SNAPSHOT = Path(__file__).with_name("cli_tree.txt")
WIDTH = 100
"""The help's width, fixed: click otherwise wraps to the terminal the test runs in."""


def _commands(group: click.Group, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group, info_name=path[-1])
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _param(param: click.Parameter) -> str:
    """Everything click knows of a parameter: kind, name, flags, type, default, help, ..."""
    return f"    {param.to_info_dict()!r}"


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path[1:], "--help"], prog_name="cdc", terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    return result.output


def tree() -> str:
    """Every command path, depth first in the order ``--help`` lists them: its parameters, then its help."""
    lines: list[str] = []
    for path, command in [(("cdc",), cli), *_commands(cli, ("cdc",))]:
        lines.append(f"== {' '.join(path)} ({type(command).__name__})")
        lines.extend(_param(param) for param in command.params)
        lines.append("-- help")
        lines.extend(f"  {line}".rstrip() for line in _help(path).splitlines())
    return "\n".join(lines) + "\n"


def test_the_command_tree_matches_the_snapshot() -> None:
    now = tree()
    before = SNAPSHOT.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(before.splitlines(True), now.splitlines(True), "snapshot", "now"))
    assert now == before, f"the command tree changed (rewrite the snapshot if on purpose):\n{diff}"


def test_the_snapshot_names_every_command() -> None:
    """A sanity check on the walk itself: the groups' subcommands are in it, not only the top level."""
    paths = [line for line in tree().splitlines() if line.startswith("== ")]
    assert "== cdc deadletter redrive (Command)" in paths
    assert "== cdc admin hash-password (Command)" in paths
    assert "== cdc bench sync (Command)" in paths
    assert len(paths) == len(set(paths)) > 30


if __name__ == "__main__":
    SNAPSHOT.write_text(tree(), encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
