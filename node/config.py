"""One documented configuration: ``node/default-config.toml`` holds every setting.

Values are merged in order: built-in defaults (that file), the operator's TOML file,
``MYCEL_<SECTION>_<KEY>`` environment variables, then command-line flags. The operator's file
is ``--config FILE``, else ``$MYCEL_CONFIG``, else ``<data dir>/node.toml`` when it exists
(``mycel init`` writes it), so settings given once survive every restart.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.api.access import READ_CLASSES, unknown_classes
from node.errors import ConfigError
from node.p2p.connmgr import ConnectionLimits
from node.p2p.inbound import InboundLimits
from node.p2p.natconfig import TraversalSettings
from storage.leases import LeasePolicy

DEFAULTS_FILE = Path(__file__).with_name("default-config.toml")
CONFIG_FILE = "node.toml"
CONFIG_ENV = "MYCEL_CONFIG"
DEFAULT_DATA_DIR = "~/.mycelnet"


class ConfigExistsError(ConfigError):
    """``mycel init`` would overwrite an operator's file: refused unless asked with --force."""


def _load_defaults() -> dict[str, dict[str, Any]]:
    with open(DEFAULTS_FILE, "rb") as stream:
        return tomllib.load(stream)


@dataclass(frozen=True)
class NodeConfig:
    raw: Mapping[str, Mapping[str, Any]]
    source: Path | None = None  # the operator's file these values came from, if any

    def get(self, section: str, key: str) -> Any:
        return self.raw[section][key]

    @property
    def data_dir(self) -> Path:
        return Path(os.path.expanduser(str(self.get("node", "data_dir"))))

    @property
    def region(self) -> str:
        return str(self.get("node", "region"))

    @property
    def listen(self) -> list[str]:
        return list(self.get("node", "listen"))

    @property
    def bootstrap(self) -> list[str]:
        return list(self.get("node", "bootstrap"))

    @property
    def api_host_port(self) -> tuple[str, int]:
        text = str(self.get("api", "listen"))
        host, _, port = text.rpartition(":")
        try:
            return host.strip("[]") or "127.0.0.1", int(port)
        except ValueError:
            raise ConfigError(f"api.listen must be HOST:PORT, got {text!r}") from None

    @property
    def lease_policy(self) -> LeasePolicy:
        """How long pins made for remote peers last, and how much one peer may have pinned here."""
        quota = int(self.get("storage", "remote_pin_quota_bytes"))
        return LeasePolicy(int(self.get("storage", "remote_pin_ttl_seconds")), quota or None)

    @property
    def inbound_limits(self) -> InboundLimits:
        """Bounds on inbound libp2p connections that have not finished their handshake."""
        return InboundLimits(
            handshake_timeout=float(self.get("p2p", "handshake_timeout_seconds")),
            max_pending=int(self.get("p2p", "max_pending_connections")),
            max_pending_per_ip=int(self.get("p2p", "max_pending_per_ip")),
        )

    @property
    def connection_limits(self) -> ConnectionLimits:
        """The connection manager's watermarks (checked when the config is read)."""
        return ConnectionLimits(
            low=int(self.get("p2p", "connections_low")),
            high=int(self.get("p2p", "connections_high")),
            grace=float(self.get("p2p", "connection_grace_seconds")),
        )

    @property
    def traversal_settings(self) -> TraversalSettings:
        """AutoNAT, relay and its limits (checked when the config is read)."""
        return TraversalSettings(
            relay=bool(self.get("p2p", "relay")),
            relay_max_reservations=int(self.get("p2p", "relay_max_reservations")),
            relay_max_circuits=int(self.get("p2p", "relay_max_circuits")),
            relay_max_circuit_bytes=int(self.get("p2p", "relay_max_circuit_bytes")),
            relay_max_circuit_seconds=int(self.get("p2p", "relay_max_circuit_seconds")),
            relay_reservation_ttl_seconds=int(self.get("p2p", "relay_reservation_ttl_seconds")),
            autonat_interval_seconds=float(self.get("p2p", "autonat_interval_seconds")),
            autonat_confirmations=int(self.get("p2p", "autonat_confirmations")),
        )


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> NodeConfig:
    """Merge defaults, ``path``, the environment and ``overrides`` ("section.key" -> value)."""
    merged = _load_defaults()
    if path is not None:
        try:
            with open(path, "rb") as stream:
                user = tomllib.load(stream)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for section, values in user.items():
            if section not in merged or not isinstance(values, dict):
                raise ConfigError(f"{path}: unknown section [{section}] (see node/default-config.toml)")
            for key, value in values.items():
                _set(merged, section, key, value, f"{path}: {section}.{key}")
    for name, text in os.environ.items():
        if not name.startswith("MYCEL_") or name == "MYCEL_DATA_DIR":
            continue
        section, _, key = name[len("MYCEL_") :].lower().partition("_")
        if section in merged and key in merged[section]:
            _set(merged, section, key, _parse_env(text, merged[section][key], name), name)
    if "MYCEL_DATA_DIR" in os.environ:
        merged["node"]["data_dir"] = os.environ["MYCEL_DATA_DIR"]
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        _set(merged, section, key, value, f"--{key.replace('_', '-')}")
    _check_ceilings(merged["capacity"])
    try:
        _check_values(merged)
        _check_api(merged["api"])
        _check_guards(merged)
    except ConfigError as exc:
        if path is None:
            raise
        raise ConfigError(f"{exc} (settings from {path}, MYCEL_* variables and flags)") from None
    return NodeConfig(merged, path)


def find_config_file(explicit: Path | None = None, data_dir: Path | str | None = None) -> Path | None:
    """The operator's file: ``explicit``, else ``$MYCEL_CONFIG``, else ``<data dir>/node.toml`` if it
    exists, the data dir being ``data_dir`` (a flag), else ``$MYCEL_DATA_DIR``, else the default."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.path.expanduser(os.environ[CONFIG_ENV]))
    directory = str(data_dir or os.environ.get("MYCEL_DATA_DIR") or DEFAULT_DATA_DIR)
    candidate = Path(os.path.expanduser(directory)) / CONFIG_FILE
    return candidate if candidate.is_file() else None


# What ``mycel init`` records: the settings an operator chooses once; the rest keep their defaults.
INIT_SETTINGS = {
    "node": ("data_dir", "region", "listen", "bootstrap", "mdns"),
    "api": ("listen",),
    "capacity": ("price_per_cpu_second",),
    "chain": ("rpc_url", "contract", "key_file"),
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # A JSON string is a TOML basic string once DEL, which TOML wants escaped, is escaped too.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def render_config(config: NodeConfig) -> str:
    """A node.toml holding ``config``'s INIT_SETTINGS, commented, that load_config reads back equal."""
    lines = [
        "# mycelnet node settings, written by `mycel init`; `mycel node start` reads this file.",
        "# Every other setting, with its default and meaning: node/default-config.toml.",
        "# Precedence: command-line flag > MYCEL_<SECTION>_<KEY> environment variable > this file > default.",
    ]
    for section, keys in INIT_SETTINGS.items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {_toml_value(config.get(section, key))}" for key in keys]
    return "\n".join(lines) + "\n"


def write_config(path: Path, config: NodeConfig, force: bool = False) -> None:
    """Write ``config`` to ``path`` atomically; an existing file is kept unless ``force``."""
    if path.exists() and not force:
        raise ConfigExistsError(f"{path} already exists; edit it, or overwrite it with `mycel init --force`")
    text = render_config(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")


def _check_values(merged: Mapping[str, Mapping[str, Any]]) -> None:
    """Catch a wrong value when the config is read, naming the setting, not deep in a start-up."""
    node, chain = merged["node"], merged["chain"]
    if not _REGION.fullmatch(node["region"]):
        raise ConfigError(f"node.region must be 1-64 letters, digits or ._:/- (e.g. eu-west), got {node['region']!r}")
    if not node["listen"]:
        raise ConfigError("node.listen is empty: give at least one multiaddr, e.g. /ip4/0.0.0.0/tcp/4001")
    for key in ("listen", "bootstrap"):
        for address in node[key]:
            if not isinstance(address, str) or not address.startswith("/") or "/tcp/" not in address:
                raise ConfigError(f"node.{key}: {address!r} is not a TCP multiaddr like /ip4/0.0.0.0/tcp/4001")
    api = str(merged["api"]["listen"])
    host, _, port = api.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"api.listen must be HOST:PORT with a port up to 65535, e.g. 127.0.0.1:5080, got {api!r}")
    for section, values in merged.items():
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{section}.{key} must not be negative, got {value!r}")
    if float(merged["streams"]["poll_seconds"]) < 0.1:
        raise ConfigError(f"streams.poll_seconds must be at least 0.1, got {merged['streams']['poll_seconds']!r}")
    rpc_url, contract = str(chain["rpc_url"]), str(chain["contract"])
    if rpc_url and not rpc_url.startswith(_URL_SCHEMES):
        raise ConfigError(f"chain.rpc_url must be an http(s):// or ws(s):// URL, got {rpc_url!r}")
    if contract and not _ADDRESS.fullmatch(contract):
        raise ConfigError(f"chain.contract must be a 0x address of 40 hex digits, got {contract!r}")
    if bool(rpc_url) != bool(contract):
        missing = "chain.contract" if rpc_url else "chain.rpc_url"
        raise ConfigError(f"settlement needs both chain.rpc_url and chain.contract: set {missing} too (or neither)")


def _check_guards(merged: Mapping[str, Mapping[str, Any]]) -> None:
    """The bounds against hostile peers must be real bounds: none may be zero or negative."""
    positive = [
        ("p2p", "handshake_timeout_seconds"),
        ("p2p", "max_pending_connections"),
        ("p2p", "max_pending_per_ip"),
        ("p2p", "relay_max_reservations"),
        ("p2p", "relay_max_circuits"),
        ("p2p", "relay_max_circuit_bytes"),
        ("p2p", "relay_max_circuit_seconds"),
        ("p2p", "relay_reservation_ttl_seconds"),
        ("p2p", "autonat_interval_seconds"),
        ("p2p", "autonat_confirmations"),
        ("storage", "remote_pin_ttl_seconds"),
        ("jobs", "queue_timeout_seconds"),
        ("jobs", "wheel_cache_mib"),
        ("jobs", "input_cache_mib"),
    ]
    for section, key in positive:
        if merged[section][key] <= 0:
            raise ConfigError(f"{section}.{key} must be positive, got {merged[section][key]!r}")
    p2p = merged["p2p"]
    if not 1 <= p2p["connections_low"] <= p2p["connections_high"]:
        raise ConfigError(
            "p2p.connections_low must be at least 1 and at most p2p.connections_high, "
            f"got {p2p['connections_low']!r} and {p2p['connections_high']!r}"
        )
    if merged["storage"]["remote_pin_quota_bytes"] < 0:
        raise ConfigError("storage.remote_pin_quota_bytes must be 0 (no quota) or positive")


def _check_ceilings(capacity: Mapping[str, Any]) -> None:
    """Job ceilings must be positive: a zero ceiling would silently make every job unrunnable."""
    for key, value in capacity.items():
        if key.startswith("max_") and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"capacity.{key} must be a positive integer, got {value!r}")


def _check_api(api: Mapping[str, Any]) -> None:
    """Read classes must exist (a typo would silently protect or expose nothing) and fetch limits be positive."""
    unknown = unknown_classes([str(name) for name in api["public_reads"]])
    if unknown:
        raise ConfigError(f"api.public_reads: unknown class(es) {unknown}; known: {sorted(READ_CLASSES)}")
    for key in ("max_remote_fetches", "max_fetch_bytes"):
        value = api[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"api.{key} must be a positive integer, got {value!r}")


def _set(merged: dict[str, dict[str, Any]], section: str, key: str, value: Any, where: str) -> None:
    if section not in merged or key not in merged[section]:
        raise ConfigError(f"{where}: unknown setting (see node/default-config.toml)")
    default = merged[section][key]
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(default, bool) != isinstance(value, bool) or (
        not isinstance(default, bool) and not isinstance(value, type(default))
    ):
        raise ConfigError(f"{where}: expected {type(default).__name__}, got {type(value).__name__} {value!r}")
    merged[section][key] = value


def _parse_env(text: str, default: Any, name: str) -> Any:
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {text!r}") from None
    if isinstance(default, list):
        return [item for item in text.replace(",", " ").split() if item]
    return text
