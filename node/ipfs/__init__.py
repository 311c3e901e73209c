"""The IPFS data plane over libp2p: Bitswap (the trustless gateway lives in node/api)."""
