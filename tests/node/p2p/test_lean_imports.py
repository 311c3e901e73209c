"""node.p2p.lean_imports: py-libp2p imported without what the node does not run, every feature intact.

Each check runs in a fresh interpreter: in the test process py-libp2p may already be imported
whole (by another test), and then there is nothing left to defer.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from node.p2p import lean_imports
from tests.support import REPO_ROOT


def _fresh(code: str) -> object:
    """What ``code`` prints as JSON, run by a fresh interpreter after ``import node.p2p``."""
    program = f"import json, sys, importlib\nimport node.p2p\nfrom node.p2p import lean_imports\n{code}"
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True, cwd=REPO_ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_py_libp2p_still_has_the_shape_the_deferral_relies_on() -> None:
    """Each deferred name exists in its real module and its importers only call it."""
    assert _fresh("print(json.dumps(lean_imports.check_shape()))") == []


def test_what_is_deferred_is_not_imported_and_arrives_real_when_asked_for() -> None:
    found = _fresh(
        "stand_ins = [n for n in lean_imports.DEFERRED if n in sys.modules]\n"
        "heavy = sorted({n.split('.')[0] for n in sys.modules} & {'aioquic', 'zeroconf', 'httpx', 'requests', "
        "'trio_websocket', 'websockets', 'miniupnpc'})\n"
        "heavy += [n for n in ('dns.resolver', 'dns.asyncresolver') if n in sys.modules]\n"
        "real = [type(importlib.import_module(n)).__name__ for n in lean_imports.DEFERRED]\n"
        "print(json.dumps([stand_ins, heavy, sorted(set(real))]))"
    )
    assert found == [[], [], ["module"]]


def test_a_deferred_name_calls_the_real_one() -> None:
    found = _fresh(
        "import libp2p.host.basic_host as basic_host\n"
        "import libp2p.discovery.mdns.mdns as mdns\n"
        "deferred = basic_host.create_mdns_discovery\n"
        "print(json.dumps([type(deferred).__name__, deferred.resolve() is mdns.create_mdns_discovery]))"
    )
    assert found == ["Deferred", True]


def test_a_host_with_mdns_gets_real_mdns_discovery() -> None:
    found = _fresh(
        "from libp2p import new_host\n"
        "host = new_host(enable_mDNS=True)\n"
        "print(json.dumps([type(host.mDNS).__module__, 'zeroconf' in sys.modules]))"
    )
    assert found == ["libp2p.discovery.mdns.mdns", True]


def test_the_swarm_s_dns_resolver_is_built_at_its_first_use() -> None:
    """Swarm makes multiaddr's DNS resolver as it is built: dnspython waits for a /dns* dial."""
    found = _fresh(
        "from libp2p import new_host\n"
        "from multiaddr.resolvers import DNSADDR_TXT_PREFIX\n"
        "resolver = new_host().get_network().dns_resolver\n"
        "before = [DNSADDR_TXT_PREFIX, 'dns.asyncresolver' in sys.modules, type(resolver).__name__]\n"
        "method = resolver.resolve\n"
        "print(json.dumps(before + ['dns.asyncresolver' in sys.modules, type(method.__self__).__name__]))"
    )
    assert found == ["dnsaddr=", False, "DeferredInstance", True, "DNSResolver"]


def test_names_of_the_bare_package_and_of_libp2p_still_import() -> None:
    """``libp2p.transport``'s __init__ runs when one of its own names is first asked for."""
    found = _fresh(
        "from libp2p.transport import TCP, WebsocketTransport\n"
        "from libp2p import new_host, QUICTransport\n"
        "from libp2p.transport.tcp.tcp import TCP as RealTCP\n"
        "print(json.dumps([TCP is RealTCP, WebsocketTransport.__name__, callable(new_host)]))"
    )
    assert found == [True, "WebsocketTransport", True]


def test_a_deferred_name_used_while_loading_fails_loudly() -> None:
    with lean_imports._deferring(), pytest.raises(lean_imports.DeferredUsedWhileLoading):
        lean_imports.Deferred("json", "dumps")({})


def test_introspecting_a_deferred_name_imports_nothing() -> None:
    """typing and friends probe dunders (``__parameters__``) of what a type alias names."""
    with lean_imports._deferring():
        assert getattr(lean_imports.Deferred("json", "dumps"), "__parameters__", ()) == ()


def test_the_shape_check_names_a_deferred_name_used_as_a_value() -> None:
    import ast
    import types

    source = "from libp2p.discovery.mdns.mdns import MDNSDiscovery\nisinstance(1, MDNSDiscovery)\n"
    module = types.ModuleType("libp2p.fake")
    problems = lean_imports._importer_problems("libp2p.fake", module, ast.parse(source))
    assert problems == ["libp2p.fake:2 uses MDNSDiscovery (deferred) other than by calling it"]
