"""A seccomp-BPF filter: no network sockets (only AF_UNIX), no ptrace, bpf, mount, namespaces,
and none of the kernel interfaces that have been a steady source of local privilege
escalations and that no agent needs: io_uring, userfaultfd, the key rings, personality."""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_CLONE_THREAD = 0x00010000
# CLONE_NEWNS NEWCGROUP NEWUTS NEWIPC NEWUSER NEWPID NEWNET: a new user namespace hands the
# child every capability inside it, the others are what it would be used to build
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_AF_UNIX = 1

# arch: (fork-like syscalls, clone, clone3) for the no-new-processes rule
_PROCESS_CALLS = {"x86_64": ([57, 58], 56, 435), "aarch64": ([], 220, 435)}
# arch: (AUDIT_ARCH, socket, socketpair, denied syscalls)
_ARCHES = {
    "x86_64": (
        0xC000003E,
        41,
        53,
        [
            *(101, 321, 298, 310, 311, 250, 165, 166, 272, 155, 308, 175, 176, 246, 169),
            *(425, 426, 427, 323, 248, 249, 135, 29),
        ],
    ),
    "aarch64": (
        0xC00000B7,
        198,
        199,
        [
            *(117, 280, 241, 270, 271, 219, 40, 39, 97, 41, 268, 105, 106, 104, 142),
            *(425, 426, 427, 282, 217, 218, 92, 194),
        ],
    ),
}
# x86_64: ptrace bpf perf_event_open process_vm_readv/writev keyctl mount umount2 unshare pivot_root setns
#         init_module delete_module kexec_load reboot, then io_uring_setup/enter/register userfaultfd
#         add_key request_key personality, shmget (aarch64: the same calls by number). A System V
#         segment keeps its pages after the last detach, in no process's RSS: memory the
#         node could not count


def supported() -> bool:
    return platform.machine() in _ARCHES


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def install(allow_processes: bool = True) -> None:
    """Install the filter on the calling thread and its future children (irreversible).

    With ``allow_processes`` False, fork/vfork and process-creating clone kill the
    process with SIGSYS (threads are still allowed): RLIMIT_NPROC does not bind uid 0,
    this does, and the node reads the process limit from the signal it sees rather than
    from whatever the agent prints about a failed fork.
    """
    machine = platform.machine()
    arch, socket_nr, socketpair_nr, denied = _ARCHES[machine]
    deny = _RET_ERRNO | errno.EPERM
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),  # arch
        _insn(_JEQ_K, 1, 0, arch),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),  # foreign ABI (e.g. int 0x80): kill
        _insn(_LD_W_ABS, 0, 0, 0),  # syscall number
        _insn(_JGE_K, 0, 1, 0x40000000),  # x32 ABI numbers
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    for nr in denied:
        prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, deny)]
    forks, clone_nr, clone3_nr = _PROCESS_CALLS[machine]
    # clone3 hides its flags in memory BPF cannot read: ENOSYS makes libc fall back to clone,
    # whose flags are a register the filter checks (unshare and setns are denied above)
    prog += [_insn(_JEQ_K, 0, 1, clone3_nr), _insn(_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS)]
    prog += [
        _insn(_JEQ_K, 0, 4, clone_nr),
        _insn(_LD_W_ABS, 0, 0, 16),  # clone flags (low word)
        _insn(_JSET_K, 0, 1, _CLONE_NAMESPACES),
        _insn(_RET_K, 0, 0, deny),
        _insn(_LD_W_ABS, 0, 0, 0),  # no namespace flag: reload the syscall number and go on
    ]
    if not allow_processes:
        refuse = _RET_KILL_PROCESS
        for nr in forks:
            prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, refuse)]
        prog += [
            _insn(_JEQ_K, 0, 4, clone_nr),
            _insn(_LD_W_ABS, 0, 0, 16),  # clone flags (low word)
            _insn(_JSET_K, 1, 0, _CLONE_THREAD),
            _insn(_RET_K, 0, 0, refuse),
            _insn(_LD_W_ABS, 0, 0, 0),  # a thread: reload the syscall number and go on
        ]
    for nr in (socket_nr, socketpair_nr):
        prog += [
            _insn(_JEQ_K, 0, 3, nr),
            _insn(_LD_W_ABS, 0, 0, 16),  # args[0] (low word): the address family
            _insn(_JEQ_K, 1, 0, _AF_UNIX),
            _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EACCES),
        ]
        prog += [_insn(_RET_K, 0, 0, _RET_ALLOW)] if nr == socketpair_nr else [_insn(_LD_W_ABS, 0, 0, 0)]
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    code = b"".join(prog)
    filters = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(filters, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(SET_SECCOMP) failed")
