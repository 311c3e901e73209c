"""Landlock (Linux 5.13+): an unprivileged, inheritable file-system (and TCP, signal) allow-list."""

from __future__ import annotations

import ctypes
import os
import struct

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same on x86_64 and aarch64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
_WRITE_MASK_V1 = (1 << 13) - 1 - EXECUTE - READ_FILE - READ_DIR  # remove/make of every kind, and write
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
READ = EXECUTE | READ_FILE | READ_DIR
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    result = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return int(result) if result > 0 else 0


def _all_fs(abi: int) -> int:
    mask = READ | _WRITE_MASK_V1
    if abi >= 2:
        mask |= _REFER
    if abi >= 3:
        mask |= _TRUNCATE
    if abi >= 5:
        mask |= _IOCTL_DEV
    return mask


def prepare(read_only: list[str], read_write: list[str]) -> int:
    """Build a ruleset allowing only these paths; returns its fd for :func:`enforce`.

    Split from ``enforce`` so the paths are opened while the process may still
    traverse them (before it gives up root).
    """
    abi = abi_version()
    if abi == 0:
        raise OSError("Landlock is not available on this kernel")
    handled = _all_fs(abi)
    attr = struct.pack("<Q", handled)
    if abi >= 4:
        attr += struct.pack("<Q", _NET_BIND_TCP | _NET_CONNECT_TCP)
    if abi >= 6:
        attr += struct.pack("<Q", _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _libc.syscall(_SYS_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for paths, access in ((read_only, READ), (read_write, handled)):
            for path in paths:
                _add_path(int(ruleset), path, access, handled)
    except BaseException:
        os.close(int(ruleset))
        raise
    return int(ruleset)


def enforce(ruleset: int) -> None:
    """Restrict this process (and its future children) to the ruleset; irreversible."""
    try:
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
        if _libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def restrict(read_only: list[str], read_write: list[str]) -> None:
    enforce(prepare(read_only, read_write))


def _add_path(ruleset: int, path: str, access: int, handled: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            access &= EXECUTE | READ_FILE | WRITE_FILE | _TRUNCATE | _IOCTL_DEV  # file rules take file rights only
        rule = ctypes.create_string_buffer(struct.pack("<Qi", access & handled, fd), 12)
        if (
            _libc.syscall(
                _SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), rule, ctypes.c_uint32(0)
            )
            != 0
        ):
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)
