"""Entry point of the ``mycel`` command: wires the command groups, turns errors into one line.

Exit codes: 0 success, 1 the operation failed, 2 usage error, 3 verification failed
(bytes, blocks or signatures that do not check out).
"""

from __future__ import annotations

import sys

import click

from node.cli.agent_cmds import COMMANDS as AGENT_COMMANDS
from node.cli.chain_cmds import COMMANDS as CHAIN_COMMANDS
from node.cli.common import EXIT_FAILED, EXIT_USAGE, EXIT_VERIFY_FAILED
from node.cli.demo_cmd import demo_cmd
from node.cli.job_cmds import COMMANDS as JOB_COMMANDS
from node.cli.node_cmds import COMMANDS as NODE_COMMANDS
from node.cli.storage_cmds import COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mycelnet")
def cli() -> None:
    """mycelnet: run AI agents next to their data, verify every result.

    Exit codes: 0 ok, 1 failed, 2 usage error, 3 verification failed.
    """


for command in [*COMMANDS, *NODE_COMMANDS, *AGENT_COMMANDS, *JOB_COMMANDS, *CHAIN_COMMANDS, demo_cmd]:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; known errors print ``error: ...`` on one line, never a traceback."""
    from agents.errors import AgentError
    from contracts.errors import ChainError
    from node.errors import NodeError
    from sdk.errors import SdkError, VerificationError
    from storage.errors import StorageError

    try:
        cli.main(args=argv, prog_name="mycel", standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return EXIT_FAILED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except StorageError as exc:
        code = 3 if type(exc).__name__ == "BlockVerificationError" else EXIT_FAILED
        click.echo(f"error: {exc}", err=True)
        return code
    except VerificationError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_VERIFY_FAILED
    except (NodeError, AgentError, ChainError, SdkError) as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    except OSError as exc:
        click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EXIT_USAGE", "cli", "main"]
