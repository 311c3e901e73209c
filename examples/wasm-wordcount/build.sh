#!/usr/bin/env bash
# Build wordcount.wasm with Debian's toolchain: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32
# The .wasm is committed, so neither the tests nor CI need the toolchain.
set -euo pipefail
cd "$(dirname "$0")"
clang --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Wextra -Wl,--strip-all -o wordcount.wasm wordcount.c
echo "built $(pwd)/wordcount.wasm ($(stat -c %s wordcount.wasm) bytes)"
