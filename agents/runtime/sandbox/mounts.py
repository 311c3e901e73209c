"""A private file-system view: only the runtime, the bundle, /in, /out and scratch exist.

Landlock decides which files an agent may open, but (up to ABI 7) not which pathname
unix sockets it may ``connect()`` to, and it does not hide that a path exists. So the
sandboxed process gets its own mount namespace whose root is a fresh tmpfs holding
bind mounts of the allowed paths (at their own names, read-only where they are read
only) and a ``/proc`` of its own PID namespace; the host's root is detached. A socket
the host serves anywhere else has no name in this view, so nothing can connect to it.

Standard library only, applied by the launcher while it still has root (or root of its
user namespace), before Landlock and seccomp.
"""

from __future__ import annotations

import ctypes
import os

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _encode(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(_encode(source), _encode(target), _encode(kind), ctypes.c_ulong(flags), _encode(data))
    _check(result, f"mount {source} on {target}")


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def isolate(
    new_root: str, read_only: list[str], read_write: list[str], binds: list[tuple[str, str]] | None = None
) -> None:
    """Enter a new mount namespace whose root holds only these paths, and ``/proc``.

    ``binds`` are (source, target) pairs mounted read-only after the rest: a job's cached
    inputs onto their placeholders under its ``in/`` (which must already be kept). A
    read-only bind is what keeps the shared cache whole: writes, truncation, chmod, unlink
    and rename through it all fail with EROFS, whatever the file's owner or mode.

    ``new_root`` is an empty directory; the tmpfs is mounted on it inside the new
    namespace only, so the host never sees it. Paths under ``/proc`` are served by the
    new ``/proc``. A top-level symlink (``/lib -> usr/lib``) whose target is also kept
    is recreated as the same symlink; any other path is bound at its own name.
    """
    _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing done here propagates back to the host
    _mount("tmpfs", new_root, "tmpfs", _MS_NOSUID, "size=1m,mode=0755")
    wanted = [(path, False) for path in read_only] + [(path, True) for path in read_write]
    wanted = [(os.path.abspath(path), writable) for path, writable in wanted if os.path.lexists(path)]
    wanted = [(path, writable) for path, writable in wanted if not _covered(path, ["/proc"])]
    wanted.sort(key=lambda item: item[0].count("/"))
    real_kept = [os.path.realpath(path) for path, _ in wanted if not os.path.islink(path)]
    bound: list[str] = []
    for path, writable in wanted:
        target = new_root + path
        if os.path.islink(path) and os.path.dirname(path) == "/" and _covered(os.path.realpath(path), real_kept):
            if not os.path.lexists(target):
                os.symlink(os.readlink(path), target)
            continue
        if _covered(path, bound) and not writable:
            continue  # already visible (read-only) through a kept parent
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(path, target, None, _MS_BIND | _MS_REC)
        if not writable:
            _mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID)
        bound.append(path)
    for source, target in binds or []:
        placed = new_root + os.path.abspath(target)
        if not _covered(os.path.abspath(target), bound) or os.path.islink(placed) or not os.path.exists(placed):
            raise OSError(f"no placeholder for a cached input at {target}")
        _mount(source, placed, None, _MS_BIND)
        _mount(None, placed, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID)
    os.makedirs(new_root + "/proc", exist_ok=True)
    _mount("proc", new_root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    os.chdir(new_root)
    pivot = _PIVOT_ROOT[os.uname().machine]
    _check(_libc.syscall(pivot, b".", b"."), "pivot_root")  # the old root is stacked on the new one
    _check(_libc.umount2(b".", _MNT_DETACH), "detach the host's root")
    os.chdir("/")
