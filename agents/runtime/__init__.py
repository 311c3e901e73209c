"""Sandboxed agent runtimes: ``wasm`` (wasmtime, in process) and ``python`` (locked-down subprocess)."""
