"""Options and helpers shared by every ``mycel`` command."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATA_DIR = "~/.mycelnet"

# Exit codes, documented in the README and in ``mycel --help``.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_VERIFY_FAILED = 3


class VerificationFailed(click.ClickException):
    """Bytes, blocks or signatures did not check out: exit code 3, one line."""

    exit_code = EXIT_VERIFY_FAILED


def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="MYCEL_DATA_DIR",
        default=DEFAULT_DATA_DIR,
        show_default=True,
        help="Node data directory (env MYCEL_DATA_DIR).",
    )(func)


def resolve_data_dir(data_dir: Path) -> Path:
    return Path(os.path.expanduser(str(data_dir)))


def open_store(data_dir: Path) -> Any:
    from storage.blockstore import BlockStore

    return BlockStore(resolve_data_dir(data_dir) / "blocks")


def parse_cid(text: str) -> Any:
    from storage.cid import CID

    return CID.parse(text)
