from __future__ import annotations

from pathlib import Path

import pytest

from node.config import DEFAULTS_FILE, load_config
from node.errors import ConfigError


def test_defaults_are_documented_and_loaded() -> None:
    config = load_config()
    text = DEFAULTS_FILE.read_text()
    for section, values in config.raw.items():
        assert f"[{section}]" in text
        for key in values:
            assert f"\n{key} = " in text, key
    assert config.api_host_port == ("127.0.0.1", 5080)


def test_precedence_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nregion = "from-file"\nmdns = false\n[api]\nlisten = "127.0.0.1:6000"\n')
    assert load_config(path).region == "from-file"
    monkeypatch.setenv("MYCEL_NODE_REGION", "from-env")
    monkeypatch.setenv("MYCEL_NODE_BOOTSTRAP", "/ip4/1.2.3.4/tcp/1/p2p/x,/ip4/5.6.7.8/tcp/2/p2p/y")
    config = load_config(path)
    assert config.region == "from-env" and len(config.bootstrap) == 2
    assert load_config(path, {"node.region": "from-flag"}).region == "from-flag"
    assert load_config(path).api_host_port == ("127.0.0.1", 6000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nope]\nx = 1\n", "unknown section"),
        ("[node]\nnope = 1\n", "unknown setting"),
        ('[node]\nannounce_interval = "soon"\n', "expected int"),
        ("[node\n", "not valid TOML"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYCEL_NODE_MDNS", "maybe")
    with pytest.raises(ConfigError, match="MYCEL_NODE_MDNS"):
        load_config()


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Path("/nonexistent/node.toml"))


def test_network_and_remote_pin_guards_load_and_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_config()
    assert defaults.inbound_limits.handshake_timeout == 10.0
    assert defaults.lease_policy.ttl_seconds == 24 * 3600 and defaults.lease_policy.quota_bytes == 8 << 30
    monkeypatch.setenv("MYCEL_P2P_HANDSHAKE_TIMEOUT_SECONDS", "1.5")
    monkeypatch.setenv("MYCEL_STORAGE_REMOTE_PIN_QUOTA_BYTES", "0")
    config = load_config()
    assert config.inbound_limits.handshake_timeout == 1.5 and config.lease_policy.quota_bytes is None  # 0 = none
    for name, value in [("MYCEL_P2P_MAX_PENDING_PER_IP", "0"), ("MYCEL_STORAGE_REMOTE_PIN_TTL_SECONDS", "-1")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match="must be positive"):
            load_config()
        monkeypatch.delenv(name)
