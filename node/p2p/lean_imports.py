"""Import py-libp2p 0.8.x without the parts a node never runs, so an idle node stays small.

Whatever a host uses, importing py-libp2p executes: QUIC (aioquic, pyOpenSSL) from
``libp2p/__init__.py`` and ``libp2p.custom_types``; the WebSocket transport (trio-websocket,
wsproto, websockets) from ``libp2p/transport/__init__.py``; AutoTLS/ACME (httpx, requests,
rich, pygments), mDNS (zeroconf), UPnP and bootstrap discovery from ``libp2p.host.basic_host``.
A node with Noise, Yamux and TCP runs none of it, yet paid for it on every start (with the
lazy wasm runtime, ~26 MiB of a node's 120 MiB idle RSS and ~0.3-0.6 s of its start CPU:
see bench/start.py).

:func:`load` imports py-libp2p while two things are in place, then takes them away:

* **Deferred modules** (``DEFERRED``): importing one gives a stand-in module, whose every
  name is a :class:`Deferred`, a callable that imports the real module the first time it is
  called and forwards to it. Each importer only *calls* these names (check_shape verifies
  it): ``BasicHost`` calls ``create_mdns_discovery`` only with mDNS on, ``ACMEClient`` only
  with AutoTLS, and so on, so every feature still works; it just imports on first use. Once
  loading is over the stand-ins leave ``sys.modules``: anything imported later gets the real
  modules. Two refinements: a name in ``DEFERRED_INSTANCES`` defers its call as well (the
  Swarm builds multiaddr's DNS resolver at once; dnspython is imported at the first /dns*
  dial), and a constant in ``DEFERRED_CONSTANTS`` is answered with its value.
* **A bare package**: ``libp2p.transport`` is registered with its real ``__path__`` but its
  ``__init__`` (which only re-exports) is not run; its submodules import as usual, and the
  first name that is not a submodule runs the real ``__init__`` (see :class:`BarePackage`).

``libp2p/__init__.py`` itself runs as usual, so ``libp2p.new_host`` is py-libp2p's own.
One more: dnspython (which multiaddr's DNS resolver imports) is told it has no DNS-over-QUIC,
or it imports aioquic as well (:func:`_without_dns_over_quic`). Nothing here edits py-libp2p;
if its imports change shape, :func:`check_shape` (run by the tests) names what changed, and a
deferred name used while loading raises at once.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# module -> why a node never needs it at start
DEFERRED: dict[str, str] = {
    "libp2p.transport.quic.transport": "QUIC transport (aioquic): the node listens on TCP only",
    "libp2p.transport.quic.utils": "QUIC multiaddr helpers (aioquic)",
    "libp2p.transport.quic.stream": "QUIC streams (aioquic); custom_types names the class in a type alias",
    "libp2p.security.tls.autotls.acme": "AutoTLS certificates from an ACME CA (httpx, requests)",
    "libp2p.security.tls.autotls.broker": "AutoTLS DNS-01 broker (requests, dnspython)",
    "libp2p.discovery.mdns.mdns": "mDNS discovery (zeroconf): only with --mdns",
    "libp2p.discovery.mdns.broadcaster": "mDNS discovery (zeroconf)",
    "libp2p.discovery.mdns.listener": "mDNS discovery (zeroconf)",
    "libp2p.discovery.bootstrap.bootstrap": "py-libp2p's bootstrap discovery: the node dials its peers itself",
    "libp2p.discovery.upnp.upnp": "UPnP port mapping (miniupnpc)",
    "multiaddr.resolvers.dns": "dnspython: only a dial to a /dns* address resolves a name",
}
# Deferred names whose *call* is deferred too: what a call returns builds the real object when
# first used. py-libp2p's Swarm makes multiaddr's DNS resolver as it is built (dnspython, ~7 MiB).
DEFERRED_INSTANCES: dict[tuple[str, str], str] = {
    ("multiaddr.resolvers.dns", "DNSResolver"): "Swarm keeps one and only calls its methods on a /dns* dial",
}
# Deferred names that are constants: the stand-in answers them with these values (check_shape
# compares them with the real module's).
DEFERRED_CONSTANTS: dict[tuple[str, str], object] = {
    ("multiaddr.resolvers.dns", "DNSADDR_TXT_PREFIX"): "dnsaddr=",
}
# (importer, name): a deferred name an importer reads as a value, and why that is safe
PASSED_ON: dict[tuple[str, str], str] = {
    ("libp2p", "QUICTransport"): "new_swarm passes the class on to _build_transports_for_swarm, which only calls it",
}
BARE_PACKAGES: tuple[str, ...] = ("libp2p.transport",)  # its __init__ imports the WebSocket transport
# Every py-libp2p module node/p2p imports, loaded while the stand-ins are in place. libp2p first:
# py-libp2p's import graph has cycles that resolve only from the entry point its __init__ is.
MODULES: tuple[str, ...] = (
    "libp2p",
    "libp2p.kad_dht.kad_dht",
    "libp2p.pubsub.gossipsub",
    "libp2p.pubsub.pubsub",
    "libp2p.host.autonat",
    "libp2p.relay.circuit_v2.config",
    "libp2p.relay.circuit_v2.dcutr",
    "libp2p.relay.circuit_v2.protocol",
    "libp2p.relay.circuit_v2.resources",
    "libp2p.relay.circuit_v2.transport",
    "libp2p.network.connection.raw_connection",
    "libp2p.tools.anyio_service",
)


class DeferredUsedWhileLoading(RuntimeError):
    """A module imported while loading used a deferred name at once: it cannot be deferred."""


class ShapeMismatch(RuntimeError):
    """py-libp2p's imports no longer have the shape :func:`load` was written for."""


_loading = False


class Deferred:
    """One name of a deferred module: calling it imports the real module (once) and calls
    the real name; reading an attribute of it reads the real name's."""

    __slots__ = ("_target", "module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self._target: Any = None

    def resolve(self) -> Any:
        if self._target is None:
            if _loading:
                raise DeferredUsedWhileLoading(f"{self.module}.{self.name} was used while py-libp2p was loading")
            self._target = getattr(importlib.import_module(self.module), self.name)
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (self.module, self.name) in DEFERRED_INSTANCES:
            return DeferredInstance(self, args, kwargs)
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # introspection (typing asks for __parameters__ ...): no import
            raise AttributeError(attribute)
        return getattr(self.resolve(), attribute)

    def __repr__(self) -> str:
        return f"<deferred {self.module}.{self.name}>"


class DeferredInstance:
    """What calling a name of ``DEFERRED_INSTANCES`` gives: the real call is made (the module
    imported) the first time one of its attributes is read."""

    __slots__ = ("_args", "_factory", "_kwargs", "_lock", "_real")

    def __init__(self, factory: Deferred, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._factory, self._args, self._kwargs = factory, args, kwargs
        self._lock = threading.Lock()  # trio's thread and the loop's may both use it first
        self._real: Any = None

    def real(self) -> Any:
        with self._lock:
            if self._real is None:
                self._real = self._factory.resolve()(*self._args, **self._kwargs)
            return self._real

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.real(), attribute)

    def __repr__(self) -> str:
        return f"<deferred {self._factory.module}.{self._factory.name}() instance>"


class StandIn(types.ModuleType):
    """What importing a deferred module gives while loading: every name is a :class:`Deferred`."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if (self.__name__, name) in DEFERRED_CONSTANTS:
            return DEFERRED_CONSTANTS[self.__name__, name]
        return Deferred(self.__name__, name)


class BarePackage(types.ModuleType):
    """A package whose ``__init__`` has not run: submodules import as usual; the first other
    name asked for runs the real ``__init__`` into this module, then is answered from it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or self.__dict__.get("_mycelnet_initialised"):
            raise AttributeError(name)
        if importlib.machinery.PathFinder.find_spec(f"{self.__name__}.{name}", self.__path__) is not None:
            raise AttributeError(name)  # a submodule not imported yet: the import system imports it
        self.__dict__["_mycelnet_initialised"] = True
        real: importlib.abc.Loader = self.__dict__["_mycelnet_loader"]
        real.exec_module(self)
        return getattr(self, name)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """While loading: stand-ins for ``DEFERRED``, bare modules for ``BARE_PACKAGES``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in DEFERRED:
            return importlib.machinery.ModuleSpec(fullname, self, origin="deferred by node.p2p.lean_imports")
        if fullname in BARE_PACKAGES:
            real = importlib.machinery.PathFinder.find_spec(fullname, path)
            if real is None or real.loader is None or real.submodule_search_locations is None:
                raise ShapeMismatch(f"{fullname} is no longer a package")
            spec = importlib.machinery.ModuleSpec(fullname, self, origin=real.origin, is_package=True)
            spec.submodule_search_locations = list(real.submodule_search_locations)
            spec.loader_state = real.loader
            spec.has_location = True
            return spec
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name in DEFERRED:
            return StandIn(spec.name)
        module = BarePackage(spec.name)
        module.__dict__["_mycelnet_loader"] = spec.loader_state
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: a stand-in makes its names on demand, a bare package runs on demand."""


@contextmanager
def _deferring() -> Iterator[None]:
    global _loading
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    _loading = True
    try:
        yield
    finally:
        _loading = False
        sys.meta_path.remove(finder)
        for name in DEFERRED:
            if isinstance(sys.modules.get(name), StandIn):
                del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if isinstance(getattr(sys.modules.get(parent), child, None), StandIn):
                delattr(sys.modules[parent], child)


def load() -> None:
    """Import the py-libp2p modules the node uses (``MODULES``) with ``DEFERRED`` deferred.

    Must run before anything else imports py-libp2p (``node/p2p/__init__.py`` calls it); once
    py-libp2p is imported it changes nothing.
    """
    if "libp2p" in sys.modules:
        return
    _without_dns_over_quic()
    with _deferring():
        for name in MODULES:
            importlib.import_module(name)


def _without_dns_over_quic() -> None:
    """Keep dnspython from importing aioquic. py-libp2p's Swarm builds multiaddr's DNS resolver
    at once, so dnspython is imported on every start, and with aioquic installed its
    DNS-over-QUIC support imports aioquic too; multiaddr resolves over plain DNS only."""
    import dns._features

    dns._features.force("doq", False)


def check_shape() -> list[str]:
    """What about py-libp2p differs from what :func:`load` expects (empty when all matches).

    For every loaded module that imports a deferred one: the names it takes must exist in the
    real module and be used only as called functions or in annotations, never subclassed,
    compared with ``isinstance``, caught or read as values at import.
    """
    problems: list[str] = []
    for name in list(sys.modules):
        module = sys.modules.get(name)
        if name.split(".")[0] not in ("libp2p", "multiaddr") or isinstance(module, StandIn) or module is None:
            continue
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        problems += _importer_problems(name, module, ast.parse(source))
    for (module_name, constant), value in DEFERRED_CONSTANTS.items():
        if getattr(importlib.import_module(module_name), constant, None) != value:
            problems.append(f"{module_name}.{constant} is no longer {value!r}")
    import dns._features

    if "doq" not in dns._features._requirements:
        problems.append("dnspython no longer has a 'doq' feature to turn off")
    for name in BARE_PACKAGES:
        if name in sys.modules and not isinstance(sys.modules[name], BarePackage):
            problems.append(f"{name} was imported before load(): its __init__ ran")
    return problems


def _importer_problems(name: str, module: types.ModuleType, tree: ast.Module) -> list[str]:
    package = name if hasattr(module, "__path__") else name.rpartition(".")[0]
    taken: dict[str, str] = {}  # local name -> deferred module it comes from
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            if source in DEFERRED:
                for alias in node.names:
                    taken[alias.asname or alias.name] = source
            for alias in node.names:  # `from package import deferred_module`
                if f"{source}.{alias.name}" in DEFERRED:
                    problems.append(f"{name}:{node.lineno} binds the deferred module {source}.{alias.name}")
        elif isinstance(node, ast.Import):
            problems += [
                f"{name}:{node.lineno} imports the deferred module {alias.name} whole"
                for alias in node.names
                if alias.name in DEFERRED
            ]
    if not taken:
        return problems
    for local, source in taken.items():
        real = importlib.import_module(source)
        if not hasattr(real, local):
            problems.append(f"{name} imports {local} from {source}, which no longer defines it")
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id in taken and isinstance(node.ctx, ast.Load)):
            continue
        if not _called_or_annotation(node, parents) and (name, node.id) not in PASSED_ON:
            problems.append(f"{name}:{node.lineno} uses {node.id} (deferred) other than by calling it")
    return problems


def _called_or_annotation(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether a name is the function of a call, or sits in an annotation or a type alias."""
    parent = parents.get(node)
    if isinstance(parent, ast.Call) and parent.func is node:
        return True
    while parent is not None:
        if isinstance(parent, ast.arg | ast.AnnAssign) and _within(node, parent.annotation):
            return True
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef) and _within(node, parent.returns):
            return True
        if isinstance(parent, ast.Subscript) and isinstance(parents.get(parent), ast.Assign):
            return True  # a type alias: Callable[[Deferred], ...] (typing accepts any callable)
        parent = parents.get(parent)
    return False


def _within(node: ast.AST, tree: ast.AST | None) -> bool:
    return tree is not None and any(child is node for child in ast.walk(tree))
