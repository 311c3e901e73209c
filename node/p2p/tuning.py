"""Throughput settings for py-libp2p 0.8.x, applied once at import of :mod:`node.p2p.host`.

Two costs measured on the bulk path (``/mycel/blocks``), fixed here without a fork:

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

:func:`check_shape` says what no longer matches (a constant moved, a function gone or
no longer logging, source unavailable); ``tests/node/test_p2p_tuning.py`` fails on it,
so an upgrade of py-libp2p that changes these internals is noticed, not silently
slower. At run time a mismatch is logged once and that part is skipped.

Upstream, the fix is two small changes in py-libp2p: in ``stream_muxer/yamux/yamux.py``
cap a frame at ``MAX_PLAINTEXT_LENGTH`` of Noise (or let the secure transport report
its message limit to the muxer), and use lazy ``logger.debug("...%s", arg)`` calls
(or ``isEnabledFor`` guards) on the per-frame paths.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import textwrap
import types
from dataclasses import dataclass

log = logging.getLogger("mycelnet.p2p")

YAMUX_MODULE = "libp2p.stream_muxer.yamux.yamux"
NOISE_IO_MODULE = "libp2p.security.noise.io"

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


class TuningMismatch(RuntimeError):
    """py-libp2p's internals no longer have the shape this adapter was written for."""


@dataclass(frozen=True)
class TuningReport:
    frame_size: int
    guarded: tuple[str, ...]  # "Class.method" of each function recompiled
    problems: tuple[str, ...]


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
    for module, name in ((yamux, "MAX_MESSAGE_SIZE"), (yamux, "HEADER_SIZE"), (noise, "MAX_PLAINTEXT_LENGTH")):
        if not isinstance(getattr(module, name, None), int):
            problems.append(f"{module.__name__}.{name} is not an int constant any more")
    for where in HOT_FUNCTIONS:
        try:
            trees[where] = _function_tree(*where)
        except TuningMismatch as exc:
            problems.append(str(exc))
    return problems, trees


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
    if problems:
        log.warning("py-libp2p tuning partly skipped (internals changed): %s", "; ".join(problems))
    return TuningReport(frame_size, tuple(guarded), tuple(problems))


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
