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
        with pytest.raises(ConfigError, match=r"must be positive|must not be negative"):
            load_config()
        monkeypatch.delenv(name)


def test_init_file_reads_back_equal_and_is_found_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.config import find_config_file, render_config, write_config

    for name in ("MYCEL_CONFIG", "MYCEL_DATA_DIR", "MYCEL_NODE_REGION"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    wanted = {"node.data_dir": str(data_dir), "node.region": "eu-west", "node.listen": ["/ip4/127.0.0.1/tcp/4101"],
              "node.mdns": False, "api.listen": "127.0.0.1:5181", "capacity.price_per_cpu_second": 10**9,
              "chain.rpc_url": "http://127.0.0.1:8545", "chain.contract": "0x" + "ab" * 20,
              "chain.key_file": str(tmp_path / 'ké y"\\.hex')}  # fmt: skip
    config = load_config(None, wanted)
    assert find_config_file(None, data_dir) is None  # nothing written yet: defaults
    write_config(data_dir / "node.toml", config)
    found = find_config_file(None, data_dir)
    assert found == data_dir / "node.toml"
    again = load_config(found)
    assert again.raw == config.raw and again.source == found
    assert render_config(again) == (data_dir / "node.toml").read_text()
    monkeypatch.setenv("MYCEL_DATA_DIR", str(data_dir))
    assert find_config_file() == found  # the data dir named by the environment
    monkeypatch.setenv("MYCEL_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert find_config_file(None, data_dir) == tmp_path / "elsewhere.toml"
    assert find_config_file(tmp_path / "flag.toml", data_dir) == tmp_path / "flag.toml"


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    from node.config import ConfigExistsError, write_config

    path = tmp_path / "node.toml"
    write_config(path, load_config(None, {"node.region": "first"}))
    with pytest.raises(ConfigExistsError, match="--force"):
        write_config(path, load_config(None, {"node.region": "second"}))
    assert load_config(path).region == "first"
    write_config(path, load_config(None, {"node.region": "second"}), force=True)
    assert load_config(path).region == "second"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"node.region": "eu west"}, "node.region"),
        ({"node.region": ""}, "node.region"),
        ({"node.listen": []}, "node.listen is empty"),
        ({"node.listen": ["127.0.0.1:4001"]}, "node.listen: '127.0.0.1:4001' is not a TCP multiaddr"),
        ({"node.bootstrap": ["/ip4/1.2.3.4/udp/1"]}, "node.bootstrap"),
        ({"api.listen": "5080"}, "api.listen must be HOST:PORT"),
        ({"api.listen": "127.0.0.1:99999"}, "api.listen must be HOST:PORT"),
        ({"node.peer_timeout": -1}, "node.peer_timeout must not be negative"),
        ({"chain.rpc_url": "127.0.0.1:8545", "chain.contract": "0x" + "ab" * 20}, "chain.rpc_url must be"),
        ({"chain.rpc_url": "http://127.0.0.1:8545", "chain.contract": "0x1234"}, "chain.contract must be a 0x"),
        ({"chain.rpc_url": "http://127.0.0.1:8545"}, "set chain.contract too"),
        ({"chain.contract": "0x" + "ab" * 20}, "set chain.rpc_url too"),
    ],
)
def test_bad_values_are_named_with_what_is_expected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_a_bad_value_read_from_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[api]\nlisten = "everywhere"\n')
    with pytest.raises(ConfigError, match=f"api.listen must be HOST:PORT.*settings from {path}"):
        load_config(path)
