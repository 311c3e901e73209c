"""Our EIP-712 signing path (eth-account) against the EIP's own reference values."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from tests.support import load_json

VECTOR: Any = load_json("eip712/eip712_example_mail.json")


def test_mail_example_digest_and_signature() -> None:
    typed = VECTOR["typedData"]
    types = {k: v for k, v in typed["types"].items() if k != "EIP712Domain"}
    signable = encode_typed_data(typed["domain"], types, typed["message"])
    expected = VECTOR["expected"]
    assert "0x" + signable.header.hex() == expected["domainSeparator"]
    assert "0x" + signable.body.hex() == expected["hashStruct_Mail"]
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert "0x" + digest.hex() == expected["signHash"]
    key = keccak(b"cow")
    signed = Account.sign_typed_data(key, typed["domain"], types, typed["message"])
    assert Account.from_key(key).address.lower() == expected["address"]
    assert signed.v == int(expected["v"])
    assert signed.r == int(expected["r"], 16) and signed.s == int(expected["s"], 16)
