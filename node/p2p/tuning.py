"""Throughput settings for py-libp2p 0.8.x, applied once at import of :mod:`node.p2p.host`.

Eight costs measured on the bulk path (``/mycel/blocks``), fixed here without a fork:

1. **Frame size.** Yamux cuts writes into frames of ``MAX_MESSAGE_SIZE`` (64 KiB)
   including its 12-byte header, but one Noise transport message carries at most
   65,519 bytes of plaintext, so every full frame went out as two Noise messages
   (two encryptions, two length prefixes, two socket sends) and was read back as two.
   Setting Yamux's frame size to Noise's plaintext limit makes each frame one message.
   It is a module global py-libp2p reads at call time; frames received from peers are
   bounded by the receive window, not by this constant, so peers sending 64 KiB
   frames are still understood.

2. **Debug strings.** The per-frame functions call ``logger.debug(f"...")``; Python
   builds the f-string (and formats peer IDs) before ``debug`` can see that debug
   logging is off. :func:`guard_debug_logging` recompiles those functions from their
   own source with every ``logger.debug(...)`` statement wrapped in
   ``if logger.isEnabledFor(logging.DEBUG):`` (checked at call time, so turning debug
   logging on later still logs everything). Nothing else in the functions changes.

3. **Window credit per read.** ``YamuxStream._auto_tune_and_send_window_update`` runs
   after every read; its "partial slack" and "release on read" branches credit the peer
   for whatever was read, so a reader that keeps up sent one WINDOW_UPDATE (a Noise
   message to encrypt, send, receive, decrypt and parse) per 64 KiB data frame: 18.5
   per MiB, about as many messages back as forward. :func:`_credit_in_halves` replaces it
   with go-yamux's rule (``sendWindowUpdate``): credit once the bytes read since the
   last credit reach half the window, then the whole of it. The peer always holds at
   least half a window of credit, so it never waits on a reader that keeps up.

4. **A fresh window per request.** Every request opens a stream whose window starts at
   Yamux's 256 KiB, so a multi-MiB reply stalled on credit while the window grew (a
   stalled py-libp2p writer polls every 10 ms). :func:`open_receive_window` lets the
   requester grant the size of the reply it expects at once: credit it gives on its own
   streams, bounded by how many requests it keeps in flight.

5. **Two receive calls per Noise message.** Noise reads a message as its 2-byte length,
   then its body, and each read was one ``receive_some`` on the socket (a syscall, trio's
   readiness wait, a lock): two or three per 64 KiB message. :func:`_read_ahead`
   receives up to READ_AHEAD bytes at once and hands out the reads from them, in order,
   under a lock of its own (so a concurrent reader can never overtake buffered bytes).
   Only what one receive returned is kept, at most READ_AHEAD per connection.

6. **Settings read per frame.** Yamux reads its ``PY_YAMUX_*`` settings from the
   environment at call time, several ``os.getenv`` calls per frame (the data frame read
   timeout, the credit threshold, the debug switch). :func:`_freeze_settings` reads
   each once, at start, and answers with that value: ``PY_YAMUX_*`` set before the node
   starts still apply; changed later, they do not.

7. **Two copies per exact read.** ``libp2p.io.utils.read_exactly`` collects every read
   in a bytearray and returns ``bytes(buffer)``, even when the first read returned all
   ``n`` bytes: Yamux reads each frame's header and body with it, msgio each Noise
   message. :func:`_read_exactly` returns such a read as it came; a short one goes on
   through upstream's function (its retries and its ``IncompleteReadError``), handed
   the bytes already read first.

8. **A Noise message copied into and out of a BytesIO.** ``SecureSession`` keeps the rest
   of a message after a short read (Yamux reads each frame's 12-byte header first) in an
   ``io.BytesIO``, written in and copied out again for the frame's body. :func:`_fill`
   and :func:`_drain` keep those bytes as they are (with upstream's watermarks), and a
   read of all that is held gets that very object.

:func:`check_shape` says what no longer matches (a constant moved, a function gone or
no longer logging, source unavailable); ``tests/node/test_p2p_tuning.py`` fails on it,
so an upgrade of py-libp2p that changes these internals is noticed, not silently
slower. At run time a mismatch is logged once and that part is skipped.

Upstream, the fix is small changes in py-libp2p: in ``stream_muxer/yamux/yamux.py``
cap a frame at ``MAX_PLAINTEXT_LENGTH`` of Noise (or let the secure transport report
its message limit to the muxer), use lazy ``logger.debug("...%s", arg)`` calls (or
``isEnabledFor`` guards) on the per-frame paths, credit the window only past the
half-window threshold (drop the per-read branches), let ``new_stream`` take an
initial receive window, read its ``PY_YAMUX_*`` settings once, read the socket
ahead in ``io/trio.py`` (or read a Noise message's length and body from one buffer), return
a whole first read from ``read_exactly`` without copying it, and keep the rest of a Noise
message in ``SecureSession`` as bytes rather than an ``io.BytesIO``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import textwrap
import types
from dataclasses import dataclass
from typing import Any

import anyio

log = logging.getLogger("mycelnet.p2p")

YAMUX_MODULE = "libp2p.stream_muxer.yamux.yamux"
NOISE_IO_MODULE = "libp2p.security.noise.io"
TCP_IO_MODULE = "libp2p.io.trio"
IO_UTILS_MODULE = "libp2p.io.utils"
SESSION_MODULE = "libp2p.security.secure_session"
EXACT_READERS = (YAMUX_MODULE, "libp2p.io.msgio")  # modules that call read_exactly per frame or message
READ_AHEAD = 256 << 10  # bytes asked of the socket per receive: about four Noise messages

# (module, class, method): the functions run for every Yamux frame or Noise message.
HOT_FUNCTIONS: tuple[tuple[str, str, str], ...] = (
    (YAMUX_MODULE, "YamuxStream", "write"),
    (YAMUX_MODULE, "YamuxStream", "read"),
    (YAMUX_MODULE, "YamuxStream", "send_window_update"),
    (YAMUX_MODULE, "Yamux", "_write_frame"),
    (YAMUX_MODULE, "Yamux", "handle_incoming"),
    (YAMUX_MODULE, "Yamux", "read_stream"),
    (NOISE_IO_MODULE, "BaseNoiseMsgReadWriter", "read_msg"),
)

_MARK = "__mycelnet_guarded__"
CREDIT = (YAMUX_MODULE, "YamuxStream", "_auto_tune_and_send_window_update")
# what the credit adapter uses of YamuxStream: methods, and attributes its __init__ sets
_CREDIT_METHODS = ("_grow_threshold", "_apply_autotune_epoch", "send_window_update")
# Yamux's PY_YAMUX_* settings, functions of no arguments it calls per frame
YAMUX_SETTINGS = (
    "_perf_yamux_debug_enabled",
    "_yamux_disable_hysteresis",
    "_yamux_release_on_read",
    "_yamux_batch_threshold_divisor",
    "_yamux_data_read_timeout",
)
_FROZEN = "__mycelnet_frozen__"
_CREDIT_ATTRIBUTES = ("recv_window", "target_recv_window", "window_lock", "conn", "stream_id", "_pending_recv_release")


class TuningMismatch(RuntimeError):
    """py-libp2p's internals no longer have the shape this adapter was written for."""


@dataclass(frozen=True)
class TuningReport:
    frame_size: int
    guarded: tuple[str, ...]  # "Class.method" of each function recompiled
    problems: tuple[str, ...]
    credit_in_halves: bool = False  # Yamux window credit replaced by go-yamux's half-window rule
    read_ahead: bool = False  # TCP reads served from receives of READ_AHEAD bytes
    settings_frozen: bool = False  # PY_YAMUX_* read once, not per frame
    exact_reads: bool = False  # read_exactly returns a whole first read without copying
    session_buffer: bool = False  # SecureSession keeps a message's rest as bytes, not in a BytesIO


def check_shape() -> list[str]:
    """What about py-libp2p differs from what :func:`apply` expects (empty when all matches)."""
    problems, _ = _inspect()
    return problems


def _inspect() -> tuple[list[str], dict[tuple[str, str, str], ast.AsyncFunctionDef | ast.FunctionDef]]:
    """The shape problems, and the parsed tree of each hot function that has the expected shape
    (parsed once: reading and parsing their source is most of what tuning costs at start-up)."""
    problems: list[str] = []
    trees: dict[tuple[str, str, str], ast.AsyncFunctionDef | ast.FunctionDef] = {}
    yamux = importlib.import_module(YAMUX_MODULE)
    noise = importlib.import_module(NOISE_IO_MODULE)
    constants = (
        (yamux, "MAX_MESSAGE_SIZE"),
        (yamux, "HEADER_SIZE"),
        (yamux, "MAX_WINDOW_SIZE"),
        (noise, "MAX_PLAINTEXT_LENGTH"),
    )
    for module, name in constants:
        if not isinstance(getattr(module, name, None), int):
            problems.append(f"{module.__name__}.{name} is not an int constant any more")
    for where in HOT_FUNCTIONS:
        try:
            trees[where] = _function_tree(*where)
        except TuningMismatch as exc:
            problems.append(str(exc))
    problems.extend(_credit_problems(yamux))
    problems.extend(_read_problems())
    problems.extend(_settings_problems(yamux))
    problems.extend(_exact_problems())
    problems.extend(_session_problems())
    return problems, trees


def _session_problems() -> list[str]:
    """What differs from the ``SecureSession`` buffer :func:`_fill` and :func:`_drain` stand in for."""
    session = getattr(importlib.import_module(SESSION_MODULE), "SecureSession", None)
    if session is None:
        return [f"{SESSION_MODULE}.SecureSession is gone"]
    problems = []
    for name, parameters in (("_fill", ["self", "msg"]), ("_drain", ["self", "n"])):
        function = session.__dict__.get(name)
        function = getattr(function, "__wrapped_original__", function)
        if not isinstance(function, types.FunctionType) or list(inspect.signature(function).parameters) != parameters:
            problems.append(f"SecureSession.{name}({', '.join(parameters[1:])}) is gone or changed")
    try:
        sources = inspect.getsource(session.read) + inspect.getsource(session._reset_internal_buffer)
    except (OSError, TypeError, AttributeError):
        return [*problems, "SecureSession.read has no source to check"]
    for needed in ("self._fill(", "self._drain(", "self.low_watermark = 0", "self.high_watermark = 0"):
        if needed not in sources:
            problems.append(f"SecureSession no longer has {needed!r} where expected")
    return problems


def _fill(self: Any, msg: bytes) -> None:
    """``SecureSession._fill``: keep the rest of a message as it is (no BytesIO copy)."""
    self._mycel_held = msg
    self.low_watermark = 0
    self.high_watermark = len(msg)


def _drain(self: Any, n: int | None) -> bytes:
    """``SecureSession._drain``: up to ``n`` held bytes; all of them are the held object itself."""
    low, high = self.low_watermark, self.high_watermark
    if low == high:
        return b""
    held: bytes = self.__dict__.get("_mycel_held", b"")
    if n is None or n >= high - low:
        self._mycel_held, self.low_watermark, self.high_watermark = b"", 0, 0
        return held if low == 0 and high == len(held) else held[low:high]
    self.low_watermark = low + n
    return held[low : low + n]


def _exact_problems() -> list[str]:
    """What differs from the ``read_exactly(reader, n, retry_count)`` :func:`_read_exactly` stands in for."""
    utils = importlib.import_module(IO_UTILS_MODULE)
    original = getattr(utils, "read_exactly", None)
    if not inspect.iscoroutinefunction(original):
        return [f"{IO_UTILS_MODULE}.read_exactly is gone"]
    if list(inspect.signature(original).parameters) != ["reader", "n", "retry_count"]:
        return [f"{IO_UTILS_MODULE}.read_exactly(reader, n, retry_count) changed"]
    problems = []
    for name in EXACT_READERS:
        bound = getattr(importlib.import_module(name), "read_exactly", None)
        if bound is not original and bound is not _read_exactly:
            problems.append(f"{name} no longer calls {IO_UTILS_MODULE}.read_exactly")
    return problems


async def _read_exactly(reader: Any, n: int, retry_count: int | None = None) -> bytes:
    """``read_exactly``: a first read of all ``n`` bytes is returned as it came (no copies)."""
    data = await reader.read(n)
    if isinstance(data, bytes) and len(data) == n:
        return data
    original = importlib.import_module(IO_UTILS_MODULE).read_exactly
    rest = _Prepended(data, reader)
    result: bytes = await (original(rest, n) if retry_count is None else original(rest, n, retry_count))
    return result


class _Prepended:
    """A reader that first hands out bytes already read, then reads on (other attributes: the reader's)."""

    def __init__(self, data: bytes, reader: Any) -> None:
        self._data, self._reader = data, reader

    async def read(self, n: int | None = None) -> bytes:
        if self._data:
            data, self._data = self._data, b""
            return data
        more: bytes = await self._reader.read(n)
        return more

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


def _settings_problems(yamux: types.ModuleType) -> list[str]:
    problems = []
    for name in YAMUX_SETTINGS:
        function = getattr(yamux, name, None)
        function = getattr(function, "__wrapped_original__", function)
        if not isinstance(function, types.FunctionType) or inspect.signature(function).parameters:
            problems.append(f"{YAMUX_MODULE}.{name}() is gone or takes arguments now")
    return problems


def _freeze_settings(yamux: types.ModuleType) -> bool:
    """Replace each of Yamux's settings functions by one answering what it answers now."""
    if _settings_problems(yamux):
        return False
    for name in YAMUX_SETTINGS:
        current = getattr(yamux, name)
        if getattr(current, _FROZEN, False):
            continue
        frozen = _constant(current())
        frozen.__name__ = frozen.__qualname__ = name
        frozen.__wrapped_original__ = current  # type: ignore[attr-defined]
        setattr(frozen, _FROZEN, True)
        setattr(yamux, name, frozen)
    return True


def _constant(value: object) -> types.FunctionType:
    def setting() -> object:
        return value

    return setting  # type: ignore[return-value]


def _read_problems() -> list[str]:
    """What differs from the TCP stream :func:`_read_ahead` wraps: ``read(n)`` returning up to n bytes."""
    tcp = importlib.import_module(TCP_IO_MODULE)
    stream = getattr(tcp, "TrioTCPStream", None)
    read = getattr(stream, "read", None) if stream is not None else None
    read = getattr(read, "__wrapped_original__", read)
    if not inspect.iscoroutinefunction(read) or list(inspect.signature(read).parameters) != ["self", "n"]:
        return [f"{TCP_IO_MODULE}.TrioTCPStream.read(self, n) is gone or changed"]
    try:
        source = inspect.getsource(read)
    except (OSError, TypeError):
        return ["TrioTCPStream.read has no source to check"]
    if "receive_some(n)" not in source:
        return ["TrioTCPStream.read no longer returns one receive_some(n)"]
    return []


def _credit_problems(yamux: types.ModuleType) -> list[str]:
    """What differs from the Yamux window bookkeeping :func:`_credit_in_halves` was written for."""
    stream = getattr(yamux, "YamuxStream", None)
    if stream is None:
        return [f"{YAMUX_MODULE}.YamuxStream does not exist any more"]
    problems = []
    credit = stream.__dict__.get(CREDIT[2])
    credit = getattr(credit, "__wrapped_original__", credit)
    if not inspect.iscoroutinefunction(credit) or "bytes_read" not in inspect.signature(credit).parameters:
        problems.append(f"YamuxStream.{CREDIT[2]}(*, bytes_read) is gone or changed")
    problems += [f"YamuxStream.{name} is gone" for name in _CREDIT_METHODS if not callable(getattr(stream, name, None))]
    try:
        init = inspect.getsource(stream.__init__)
    except (OSError, TypeError):
        return [*problems, "YamuxStream.__init__ has no source to check"]
    problems += [
        f"YamuxStream no longer sets self.{name}" for name in _CREDIT_ATTRIBUTES if f"self.{name} =" not in init
    ]
    return problems


def apply() -> TuningReport:
    """Fit Yamux frames into one Noise message and guard per-frame debug strings (idempotent)."""
    problems, trees = _inspect()
    yamux = importlib.import_module(YAMUX_MODULE)
    noise = importlib.import_module(NOISE_IO_MODULE)
    frame_size = getattr(yamux, "MAX_MESSAGE_SIZE", 0)
    plaintext = getattr(noise, "MAX_PLAINTEXT_LENGTH", None)
    if isinstance(plaintext, int) and isinstance(frame_size, int) and frame_size > plaintext:
        setattr(yamux, "MAX_MESSAGE_SIZE", plaintext)  # header + payload == one Noise message  # noqa: B010
        frame_size = plaintext
    guarded = []
    for where, tree in trees.items():  # the others are in problems already
        if guard_debug_logging(*where, tree=tree):
            guarded.append(f"{where[1]}.{where[2]}")
    credit = not _credit_problems(yamux)
    if credit:
        stream = yamux.YamuxStream
        current = stream.__dict__[CREDIT[2]]
        if current is not _credit_in_halves:
            _credit_in_halves.__wrapped_original__ = current  # type: ignore[attr-defined]
            setattr(stream, CREDIT[2], _credit_in_halves)
    settings = _freeze_settings(yamux)
    session = not _session_problems()
    if session:
        cls = importlib.import_module(SESSION_MODULE).SecureSession
        for replacement in (_fill, _drain):
            current = cls.__dict__[replacement.__name__]
            if current is not replacement:
                replacement.__wrapped_original__ = current  # type: ignore[union-attr]
                setattr(cls, replacement.__name__, replacement)
    exact = not _exact_problems()
    if exact:
        for name in EXACT_READERS:
            setattr(importlib.import_module(name), "read_exactly", _read_exactly)  # noqa: B010
    read_ahead = not _read_problems()
    if read_ahead:
        stream = importlib.import_module(TCP_IO_MODULE).TrioTCPStream
        if stream.__dict__["read"] is not _read_ahead:
            _read_ahead.__wrapped_original__ = stream.__dict__["read"]  # type: ignore[attr-defined]
            setattr(stream, "read", _read_ahead)  # noqa: B010
    if problems:
        log.warning("py-libp2p tuning partly skipped (internals changed): %s", "; ".join(problems))
    return TuningReport(frame_size, tuple(guarded), tuple(problems), credit, read_ahead, settings, exact, session)


async def _read_ahead(self: Any, n: int | None = None) -> bytes:
    """``TrioTCPStream.read``: up to ``n`` bytes, served from one receive of READ_AHEAD bytes.

    The receive itself (and its error mapping) is upstream's ``read``; what it returned
    beyond ``n`` is kept for the next calls. The lock is taken only to receive: bytes are
    kept only between receives, so a read that finds some takes them in order at once.
    Runs as a method of ``TrioTCPStream``.
    """
    if n == 0:
        return b""
    state: _ReadAhead | None = self.__dict__.get("_mycel_ahead")
    if state is None:
        state = self.__dict__["_mycel_ahead"] = _ReadAhead()
    if state.data:  # no receive runs while bytes are kept: taken in order, without the lock
        return state.take(n)
    async with state.lock:
        if state.data:
            return state.take(n)
        receive = _read_ahead.__wrapped_original__  # type: ignore[attr-defined]
        if n is not None and n >= READ_AHEAD:
            data: bytes = await receive(self, n)
            return data
        state.data, state.pos = await receive(self, READ_AHEAD), 0
        return state.take(n)


class _ReadAhead:
    """Bytes one receive returned that no read has taken yet."""

    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.data = b""
        self.pos = 0

    def take(self, n: int | None) -> bytes:
        data, pos = self.data, self.pos
        if n is None or n >= len(data) - pos:
            self.data, self.pos = b"", 0
            return data[pos:] if pos else data
        self.pos = pos + n
        return data[pos : pos + n]


async def _credit_in_halves(self: Any, *, bytes_read: int = 0) -> None:
    """go-yamux's ``sendWindowUpdate``: credit the peer once half the window has been read.

    ``delta`` is what was read since the last credit (the window's size less the credit the
    peer still holds and the bytes waiting to be read); below the threshold nothing is sent.
    ``bytes_read`` is counted by ``delta`` already. Runs as a method of ``YamuxStream``.
    """
    async with self.window_lock:
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        delta = self.target_recv_window - (self.recv_window + buffered)
        if delta <= 0 or delta < self._grow_threshold():
            return
        self.recv_window += delta
        delta += self._apply_autotune_epoch(buffered)  # may double the window, as upstream does
        self._pending_recv_release = 0
    await self.send_window_update(delta, skip_lock=True)  # never with window_lock held (upstream's rule)


async def open_receive_window(stream: Any, size: int) -> int:
    """Grant the peer ``size`` bytes of credit on a new stream at once (a Yamux stream; else nothing).

    Returns the credit added. The window then stays at ``size`` (up to Yamux's maximum),
    so credit is given back in halves of it. The caller bounds ``size`` and how many such
    streams it keeps open: the peer may send that much before anything is read.
    """
    yamux = importlib.import_module(YAMUX_MODULE)
    muxed = getattr(stream, "muxed_stream", stream)
    if not isinstance(muxed, yamux.YamuxStream):
        return 0
    size = min(size, yamux.MAX_WINDOW_SIZE)
    async with muxed.window_lock:
        grow: int = size - muxed.recv_window
        if grow <= 0:
            return 0
        muxed.recv_window += grow
        muxed.target_recv_window = max(muxed.target_recv_window, size)
    await muxed.send_window_update(grow, skip_lock=True)
    return grow


def guard_debug_logging(
    module_name: str, class_name: str, method: str, tree: ast.AsyncFunctionDef | ast.FunctionDef | None = None
) -> bool:
    """Recompile ``class_name.method`` with its ``logger.debug`` statements behind ``isEnabledFor``.

    Returns False when it was done already. Raises :class:`TuningMismatch` when the
    function cannot be found, has no source, is a closure, or logs no debug lines. ``tree``:
    the function's tree from :func:`_function_tree`, when the caller parsed it already.
    """
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    current = cls.__dict__[method]
    if getattr(current, _MARK, False):
        return False
    tree = tree or _function_tree(module_name, class_name, method)
    tree.body = [_guard_log_only_block(stmt, tree) for stmt in tree.body]
    guarded = _GuardDebug().visit(tree)
    ast.increment_lineno(guarded, current.__code__.co_firstlineno - 1)  # tracebacks point at the real lines
    ast.fix_missing_locations(guarded)
    namespace: dict[str, object] = {}
    code = compile(ast.Module(body=[guarded], type_ignores=[]), inspect.getsourcefile(current) or "<libp2p>", "exec")
    exec(code, module.__dict__, namespace)  # the module's own globals: same names, same logger
    replacement = namespace[method]
    assert isinstance(replacement, types.FunctionType)
    replacement.__qualname__ = current.__qualname__
    replacement.__doc__ = current.__doc__
    replacement.__wrapped_original__ = current  # type: ignore[attr-defined]
    setattr(replacement, _MARK, True)
    setattr(cls, method, replacement)
    return True


def _function_tree(module_name: str, class_name: str, method: str) -> ast.AsyncFunctionDef | ast.FunctionDef:
    where = f"{module_name}.{class_name}.{method}"
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, class_name).__dict__[method]
    except (ImportError, AttributeError, KeyError):
        raise TuningMismatch(f"{where} does not exist any more") from None
    original = getattr(function, "__wrapped_original__", function)
    if not isinstance(original, types.FunctionType) or original.__closure__:
        raise TuningMismatch(f"{where} is not a plain function")
    try:
        source = textwrap.dedent(inspect.getsource(original))
    except (OSError, TypeError):
        raise TuningMismatch(f"{where} has no source to recompile") from None
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) or node.name != method:
        raise TuningMismatch(f"{where} source is not a single function definition")
    if not isinstance(getattr(module, "logger", None), logging.Logger):
        raise TuningMismatch(f"{module_name} has no module-level `logger`")
    if not any(_is_debug_call(stmt) for stmt in ast.walk(node)):
        raise TuningMismatch(f"{where} no longer logs with logger.debug")
    node.decorator_list = []  # the hot functions are undecorated; a decorator would be applied twice
    return node


def _is_debug_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "debug"
        and isinstance(node.value.func.value, ast.Name)
        and node.value.func.value.id == "logger"
    )


def _debug_guard(body: list[ast.stmt], like: ast.stmt) -> ast.If:
    test = ast.Call(
        func=ast.Attribute(value=ast.Name(id="logger", ctx=ast.Load()), attr="isEnabledFor", ctx=ast.Load()),
        args=[ast.Constant(value=logging.DEBUG)],
        keywords=[],
    )
    return ast.copy_location(ast.If(test=test, body=body, orelse=[]), like)


def _guard_log_only_block(stmt: ast.stmt, function: ast.AsyncFunctionDef | ast.FunctionDef) -> ast.stmt:
    """Guard a whole top-level ``if`` that only computes values for a debug line.

    (``Yamux._write_frame`` unpacks each header and names its flags just to log them.)
    Taken only when the block does nothing but assign local names that nothing outside
    it reads, and ends in ``logger.debug``: no awaits, returns, raises or other effects.
    """
    if not isinstance(stmt, ast.If) or stmt.orelse or not stmt.body or not _is_debug_call(stmt.body[-1]):
        return stmt
    inner = list(ast.walk(stmt))
    if any(isinstance(n, ast.Await | ast.Return | ast.Raise | ast.Yield | ast.YieldFrom | ast.Global) for n in inner):
        return stmt
    for n in stmt.body[:-1]:
        if isinstance(n, ast.Assign | ast.If):
            continue
        call = n.value if isinstance(n, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "append":
            continue
        return stmt
    stored = {n.id for n in inner if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    inside = {id(n) for n in inner}
    read_outside = {
        n.id
        for n in ast.walk(function)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in inside
    }
    if stored & read_outside:
        return stmt
    return _debug_guard([stmt], stmt)


class _GuardDebug(ast.NodeTransformer):
    """``logger.debug(...)`` -> ``if logger.isEnabledFor(10): logger.debug(...)``."""

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if not _is_debug_call(node):
            return node
        return _debug_guard([node], node)

    def visit_If(self, node: ast.If) -> ast.AST:
        if _is_guard(node):
            return node  # a block guarded whole already: its debug line is inside the guard
        self.generic_visit(node)
        return node


def _is_guard(node: ast.If) -> bool:
    test = node.test
    return (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Attribute)
        and test.func.attr == "isEnabledFor"
        and isinstance(test.func.value, ast.Name)
        and test.func.value.id == "logger"
    )
