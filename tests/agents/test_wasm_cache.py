"""The compiled-module cache loads only artifacts this node compiled itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.runtime.wasm import WasmRuntime
from storage.cid import CID, RAW
from tests.agents.harness import EXAMPLES

WASM = (EXAMPLES / "wasm-wordcount" / "wordcount.wasm").read_bytes()
MODULE = CID.for_block(WASM, RAW)


def _artifacts(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.cwasm"))


def test_cache_is_reused_across_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    WasmRuntime(tmp_path).module(MODULE, WASM)
    assert len(_artifacts(tmp_path)) == 1
    restarted = WasmRuntime(tmp_path)

    def no_compiling(*_: object) -> None:
        raise AssertionError("compiled although a valid artifact was cached")

    monkeypatch.setattr(restarted, "_compile", no_compiling)
    assert restarted.module(MODULE, WASM) is not None


def test_foreign_or_tampered_artifacts_are_never_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    WasmRuntime(tmp_path).module(MODULE, WASM)
    (artifact,) = _artifacts(tmp_path)
    blob = bytearray(artifact.read_bytes())
    blob[-100] ^= 0xFF  # native code changed by someone else
    artifact.write_bytes(bytes(blob))
    loaded: list[bytes] = []
    import wasmtime

    real = wasmtime.Module.deserialize
    monkeypatch.setattr(wasmtime.Module, "deserialize", staticmethod(lambda e, b: loaded.append(b) or real(e, b)))
    WasmRuntime(tmp_path).module(MODULE, WASM)
    assert bytes(blob[32:]) not in loaded  # the forged artifact was refused, the module recompiled
    assert artifact.read_bytes() != bytes(blob)  # and the cache entry rewritten by this node


def test_cache_key_is_private(tmp_path: Path) -> None:
    WasmRuntime(tmp_path)
    assert (tmp_path / "cache.key").stat().st_mode & 0o077 == 0


def test_wrong_bytes_for_a_module_cid_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not match"):
        WasmRuntime(tmp_path).module(MODULE, WASM + b"\x00")
