"""EVM keys on disk: hex in a 0600 file, created on first use (a node's key, a client's key)."""

from __future__ import annotations

import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from contracts.errors import ChainError


def load_or_create_key(path: str | os.PathLike[str]) -> LocalAccount:
    key_file = Path(os.path.expanduser(os.fspath(path)))
    if key_file.exists():
        try:
            account: LocalAccount = Account.from_key(key_file.read_text().strip())
        except ValueError:
            raise ChainError(f"{key_file} does not hold a hex private key") from None
        return account
    key_file.parent.mkdir(parents=True, exist_ok=True)
    account = Account.create()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(account.key.hex() + "\n")
    return account
