"""The wasm engine's settings, and compiling a module in a child process that can be killed.

Cranelift compiles in native code that Python cannot interrupt: a hostile 237 KiB module
kept an in-process compile busy for 5 s under a 1 s wall limit. A child process can be
killed on time and on cancel. The child's artifact is loaded by the parent, which
trusts it as far as it trusts its own compiler: the child is this node's code running
the same wasmtime on the same input the parent would have compiled.

Run as ``python -I wasm_compiler.py MODULE ARTIFACT`` (wasmtime and the standard library
only, so it starts without the node's imports).
"""

from __future__ import annotations

import resource
import sys

import wasmtime

ENGINE_SETTINGS = "fuel=1;epoch=1;reservation=64MiB;guard=64KiB"
COMPILE_ADDRESS_SPACE = 8 << 30
EXIT_INVALID = 2


def make_engine() -> wasmtime.Engine:
    """The one engine configuration: artifacts load only into an engine with identical settings."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    # the default reserves 4 GiB of address space per memory and fails under RLIMIT_AS
    config.memory_reservation = 64 << 20
    config.memory_guard_size = 64 << 10
    return wasmtime.Engine(config)


def main() -> int:
    source, target = sys.argv[1], sys.argv[2]
    resource.setrlimit(resource.RLIMIT_AS, (COMPILE_ADDRESS_SPACE, COMPILE_ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with open(source, "rb") as stream:
        wasm = stream.read()
    try:
        module = wasmtime.Module(make_engine(), wasm)
    except wasmtime.WasmtimeError as exc:
        sys.stderr.write(" ".join(str(exc).split())[:1000])
        return EXIT_INVALID
    with open(target, "wb") as out:
        out.write(module.serialize())
    return 0


if __name__ == "__main__":
    sys.exit(main())
