"""The dev chain keeps its ledger across restarts, but not a ledger of another build."""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from contracts.devchain import start_dev_chain


def test_a_kept_chain_redeploys_a_ledger_of_another_build(tmp_path: Path) -> None:
    chain = start_dev_chain(tmp_path)
    try:
        first = chain.contract
    finally:
        chain.stop()
    record = tmp_path / "contract-address"
    address, build = record.read_text().split()
    assert address == first
    record.write_text(f"{first} {'0' * len(build)}")  # as a ledger of an older build left it
    chain = start_dev_chain(tmp_path)
    try:
        assert chain.contract != first and chain.web3().eth.get_code(Web3.to_checksum_address(first))  # state kept
        assert record.read_text().split() == [chain.contract, build]
    finally:
        chain.stop()
