"""One documented configuration: ``node/default-config.toml`` holds every setting.

Values are merged in order: built-in defaults (that file), the operator's TOML file,
``MYCEL_<SECTION>_<KEY>`` environment variables, then command-line flags.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.api.access import READ_CLASSES, unknown_classes
from node.errors import ConfigError
from node.p2p.inbound import InboundLimits
from storage.leases import LeasePolicy

DEFAULTS_FILE = Path(__file__).with_name("default-config.toml")


def _load_defaults() -> dict[str, dict[str, Any]]:
    with open(DEFAULTS_FILE, "rb") as stream:
        return tomllib.load(stream)


@dataclass(frozen=True)
class NodeConfig:
    raw: Mapping[str, Mapping[str, Any]]

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
    _check_api(merged["api"])
    _check_guards(merged)
    return NodeConfig(merged)


def _check_guards(merged: Mapping[str, Mapping[str, Any]]) -> None:
    """The bounds against hostile peers must be real bounds: none may be zero or negative."""
    positive = [
        ("p2p", "handshake_timeout_seconds"),
        ("p2p", "max_pending_connections"),
        ("p2p", "max_pending_per_ip"),
        ("storage", "remote_pin_ttl_seconds"),
    ]
    for section, key in positive:
        if merged[section][key] <= 0:
            raise ConfigError(f"{section}.{key} must be positive, got {merged[section][key]!r}")
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
