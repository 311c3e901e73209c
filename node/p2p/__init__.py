"""libp2p networking. py-libp2p runs on trio in its own thread; ``bridge`` is the only crossing."""
