"""libp2p networking. py-libp2p runs on trio in its own thread; ``bridge`` is the only crossing.

py-libp2p is imported here first, through :mod:`node.p2p.lean_imports`, so that what it would
import eagerly for features the node does not use (QUIC, AutoTLS, mDNS, ...) is imported only
if and when one is used.
"""

from node.p2p import lean_imports

lean_imports.load()
