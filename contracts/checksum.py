"""EIP-55 checksummed addresses, with eth-utils imported on first use only.

Importing ``eth_utils`` costs a node ~0.4-0.7 s of start-up (it pulls in pydantic and a table
of every known network), and a node without a chain never checksums an address. Every node
module that imports at start-up takes ``to_checksum_address`` from here, not from eth-utils;
a node with a chain has eth-utils loaded already (web3 imports it) when its first payment comes.
"""

from __future__ import annotations


def to_checksum_address(address: str | bytes) -> str:
    """``address`` (hex, with or without 0x, or 20 bytes) in EIP-55 form; ValueError or TypeError
    when it is not an address (exactly eth-utils' behaviour: this only defers the import)."""
    from eth_utils.address import to_checksum_address as checksum

    return str(checksum(address))
