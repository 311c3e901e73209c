"""Entry point of the ``mycel`` command: wires the command groups, turns errors into one line.

Exit codes: 0 success, 1 the operation failed, 2 usage error, 3 verification failed
(bytes, blocks or signatures that do not check out).
"""

from __future__ import annotations

import sys

import click

from node.cli.agent_cmds import COMMANDS as AGENT_COMMANDS
from node.cli.chain_cmds import COMMANDS as CHAIN_COMMANDS
from node.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EXIT_VERIFY_FAILED,
    Interrupted,
    exit_without_teardown,
)
from node.cli.data_cmds import COMMANDS as DATA_COMMANDS
from node.cli.demo_cmd import demo_cmd
from node.cli.job_cmds import COMMANDS as JOB_COMMANDS
from node.cli.node_cmds import COMMANDS as NODE_COMMANDS
from node.cli.peers_cmd import COMMANDS as PEER_COMMANDS
from node.cli.storage_cmds import COMMANDS
from node.cli.stream_cmds import COMMANDS as STREAM_COMMANDS
from node.cli.trigger_cmds import COMMANDS as TRIGGER_COMMANDS
from node.cli.trigger_cmds import agent_invoke


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mycelnet")
def cli() -> None:
    """mycelnet: run AI agents next to their data, verify every result.

    Exit codes: 0 ok, 1 failed, 2 usage error, 3 verification failed.
    """


for command in [
    *COMMANDS,
    *NODE_COMMANDS,
    *AGENT_COMMANDS,
    *JOB_COMMANDS,
    *PEER_COMMANDS,
    *CHAIN_COMMANDS,
    *DATA_COMMANDS,
    *STREAM_COMMANDS,
    *TRIGGER_COMMANDS,
    demo_cmd,
]:
    cli.add_command(command)
AGENT_COMMANDS[0].add_command(agent_invoke)


def _error(message: object) -> None:
    """One line on stderr, whatever the message holds: scripts read errors line by line."""
    click.echo("error: " + " ".join(str(message).split()), err=True)


def _command_words(argv: list[str]) -> str:
    """``mycel node start`` for ``["node", "start", "--foo"]``: the command as the user named it."""
    words: list[str] = ["mycel"]
    current: click.Command = cli
    for arg in argv:
        if not isinstance(current, click.Group) or arg not in current.commands:
            break
        words.append(arg)
        current = current.commands[arg]
    return " ".join(words)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; known errors print ``error: ...`` on one line, never a traceback.

    Each command imports what it needs when it runs, so the base install (the SDK and the
    client commands) runs without the node's dependencies; a command that needs a part this
    install lacks says which extra to add (``mycelnet[node]``, ``mycelnet[pay]``).
    """
    from agents.errors import AgentError
    from contracts.errors import ChainError
    from node.errors import NodeError
    from sdk.errors import MissingExtraError, SdkError, UsageError, VerificationError
    from sdk.extras import extra_for
    from storage.errors import StorageError

    try:
        cli.main(args=argv, prog_name="mycel", standalone_mode=False)
    except Interrupted as exc:
        if exc.message:
            _error(exc.format_message())
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except click.exceptions.Abort:
        _error("aborted")
        return EXIT_FAILED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except StorageError as exc:
        _error(exc)
        return EXIT_VERIFY_FAILED if type(exc).__name__ == "BlockVerificationError" else EXIT_FAILED
    except VerificationError as exc:
        _error(exc)
        return EXIT_VERIFY_FAILED
    except UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except (NodeError, AgentError, ChainError, SdkError) as exc:
        _error(exc)
        return EXIT_FAILED
    except ModuleNotFoundError as exc:
        extra = extra_for(exc.name)
        if extra is None or exc.name is None:
            raise  # not a missing extra: a bug, shown in full
        _error(MissingExtraError(extra, exc.name, _command_words(sys.argv[1:] if argv is None else argv)))
        return EXIT_FAILED
    except OSError as exc:
        _error(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())


__all__ = ["EXIT_USAGE", "cli", "main"]
