"""``GET /v1/node/config``, which ``mycel node status`` and ``doctor`` read, through the real
aiohttp app in-process: secrets stay out of it, and a chain that does not answer is reported,
not raised (a process would add nothing these checks look at)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.api.nodeinfo import redact_url
from node.config import load_config
from storage.blockstore import BlockStore

TOKEN = "s3cret-token-value"
RPC = "https://user:pw@rpc.example:8443/v3/0123456789abcdef0123456789abcdef?x=1"


class Network:
    async def addrs(self) -> list[str]:
        return ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWtest"]


class DeadEth:
    def get_balance(self, address: str) -> int:
        raise ConnectionError("connection refused")


def settlement() -> Any:
    summary = {"address": "0x" + "11" * 20, "contract": "0x" + "ab" * 20, "rpc_url": RPC, "chain_id": 1,
               "registered": False, "price": 0, "claims": {}, "refused_clients": []}  # fmt: skip
    return SimpleNamespace(
        summary=lambda: summary,
        address=summary["address"],
        account=SimpleNamespace(address=summary["address"]),
        ledger=SimpleNamespace(w3=SimpleNamespace(eth=DeadEth()), address=summary["contract"]),
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("", ""),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        (RPC, "https://rpc.example:8443/<redacted>"),
        ("wss://[::1]:8546/", "wss://[::1]:8546/"),
    ],
)
def test_rpc_urls_lose_credentials_path_and_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_effective_config_redacts_secrets_and_reports_a_dead_chain(tmp_path: Path) -> None:
    config = load_config(None, {"node.data_dir": str(tmp_path), "api.token": TOKEN, "chain.rpc_url": RPC,
                                "chain.contract": "0x" + "ab" * 20, "node.region": "eu-x"})  # fmt: skip
    store = BlockStore(tmp_path / "blocks", map_size=8 << 20)
    identity = SimpleNamespace(peer_id="12D3KooWtest")
    service = SimpleNamespace(config=config, metrics=None, store=store, network=Network(), settlement=settlement(),
                              identity=identity, api_url="http://127.0.0.1:5080")  # fmt: skip
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(service)))  # type: ignore[arg-type]
    await client.start_server()
    try:
        assert (await client.get("/v1/node/config")).status == 401  # not a public read when a token is set
        response = await client.get("/v1/node/config", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        text = await response.text()
        answer = await response.json()
    finally:
        await client.close()
        store.close()
    assert TOKEN not in text and "pw@" not in text and "0123456789abcdef" not in text
    assert answer["api"]["token_set"] is True and answer["settings"]["api"]["token"] == "<redacted>"
    assert answer["region"] == "eu-x" and answer["data_dir"] == str(tmp_path)
    chain = answer["settlement"]
    assert chain["on"] and chain["rpc_url"] == "https://rpc.example:8443/<redacted>"
    assert chain["balance"] is None and "connection refused" in chain["chain_error"]
    assert answer["store"] == {"blocks": 0, "bytes": 0, "quota": None, "pins": 0}
