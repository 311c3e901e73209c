"""The agent test harness: a store, an executor with a node key, and the runtimes."""

from __future__ import annotations

from pathlib import Path

import nacl.signing

from agents.bundle import pack
from agents.executor import Executor, JobOutcome
from agents.manifest import Limits
from agents.runtime.base import RunRequest
from agents.runtime.python import PythonRuntime
from agents.runtime.wasm import WasmRuntime
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import add_path

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).parents[2] / "examples"


class AgentHarness:
    def __init__(self, root: Path, wasm: WasmRuntime, python: PythonRuntime) -> None:
        self.root = root
        self.data_dir = root / "node-data"
        self.data_dir.mkdir()
        self.key_file = self.data_dir / "node.key"
        self.signing_key = nacl.signing.SigningKey.generate()
        self.key_file.write_bytes(bytes(self.signing_key))
        self.key_file.chmod(0o600)
        self.store = BlockStore(self.data_dir / "blocks", map_size=16 << 20)
        self.executor = Executor(self.store, {"wasm": wasm, "python": python}, self.signing_key, root)
        self._jobs = 0

    def put(self, path: Path) -> CID:
        return add_path(self.store, path).cid

    def run(
        self, bundle_dir: Path, *args: str, inputs: dict[str, CID] | None = None, limits: Limits | None = None
    ) -> JobOutcome:
        bundle = pack(bundle_dir, self.store)
        self._jobs += 1
        return self.executor.run(RunRequest(f"job-{self._jobs}", bundle, inputs or {}, tuple(args), limits=limits))
