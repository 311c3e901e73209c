"""The WAT source of the wasm scaffold's agent (``mycel agent init --runtime wasm``)."""

UPPERCASE_WAT = r"""(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  ;; 0: input fd, 4: output fd, 8: iovec {buf, len}, 16: bytes moved, 24: message iovec
  (data (i32.const 32) "input")
  (data (i32.const 48) "upper.txt")
  (data (i32.const 64) "no input named 'input' (run: mycel agent run . --input input=sample.txt)\n")
  (data (i32.const 160) "wrote /out/upper.txt\n")
  (func $say (param $fd i32) (param $at i32) (param $len i32)
    (i32.store (i32.const 24) (local.get $at))
    (i32.store (i32.const 28) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 24) (i32.const 1) (i32.const 16))))
  (func (export "_start")
    (local $n i32) (local $i i32) (local $c i32)
    ;; /in is preopen fd 3 (read-only), /out fd 4
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 5) (i32.const 0)
                         (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0))
      (then (call $say (i32.const 2) (i32.const 64) (i32.const 73)) (call $proc_exit (i32.const 1))))
    (drop (call $path_open (i32.const 4) (i32.const 0) (i32.const 48) (i32.const 9) (i32.const 9)
                           (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 4)))
    (block $done
      (loop $chunk
        (i32.store (i32.const 8) (i32.const 1024))
        (i32.store (i32.const 12) (i32.const 65536))
        (drop (call $fd_read (i32.load (i32.const 0)) (i32.const 8) (i32.const 1) (i32.const 16)))
        (local.set $n (i32.load (i32.const 16)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $i (i32.const 0))
        (block $upper
          (loop $byte
            (br_if $upper (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $c (i32.load8_u (i32.add (i32.const 1024) (local.get $i))))
            (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
              (then (i32.store8 (i32.add (i32.const 1024) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $byte)))
        (i32.store (i32.const 12) (local.get $n))
        (drop (call $fd_write (i32.load (i32.const 4)) (i32.const 8) (i32.const 1) (i32.const 16)))
        (br $chunk)))
    (call $say (i32.const 1) (i32.const 160) (i32.const 21))))
"""
