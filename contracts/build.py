"""Compile MycelLedger.vy into contracts/artifacts/ (ABI, bytecode, compiler version).

The artifact is committed; tests/contracts recompiles the source and demands identical
bytecode. Run: python -m contracts.build
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("MycelLedger.vy")
ARTIFACT = Path(__file__).with_name("artifacts") / "MycelLedger.json"
EVM_VERSION = "cancun"  # runs on both anvil and py-evm; 0.4.3's default (prague) does not


def compile_source() -> dict[str, object]:
    vyper = Path(sys.executable).with_name("vyper")
    out = subprocess.run(
        [str(vyper), "--evm-version", EVM_VERSION, "-f", "abi,bytecode", str(SOURCE)],
        capture_output=True,
        text=True,
        check=True,
    )
    abi_line, bytecode = out.stdout.strip().splitlines()
    version = subprocess.run([str(vyper), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return {"contract": "MycelLedger", "vyper": version, "evm_version": EVM_VERSION, "abi": json.loads(abi_line),
            "bytecode": bytecode}  # fmt: skip


def load_artifact() -> dict[str, object]:
    data: dict[str, object] = json.loads(ARTIFACT.read_text())
    return data


if __name__ == "__main__":
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(compile_source(), indent=1) + "\n")
    print(f"wrote {ARTIFACT}")
