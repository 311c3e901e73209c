"""Every ``mycel`` command documents itself with an example, and the exit codes are documented."""

from __future__ import annotations

import click

from node.cli.main import cli


def _commands(group: click.Group, prefix: str = "mycel") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
    return found


def test_every_command_has_help_with_an_example() -> None:
    missing = [
        name
        for name, command in _commands(cli)
        if not isinstance(command, click.Group) and "Example" not in (command.help or "")
    ]
    assert missing == []


def test_exit_codes_are_in_the_top_level_help() -> None:
    assert "Exit codes: 0 ok, 1 failed, 2 usage error, 3 verification failed" in (cli.help or "")
