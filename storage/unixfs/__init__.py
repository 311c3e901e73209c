"""UnixFS v1: files and directories as dag-pb DAGs, byte-compatible with ``ipfs add``."""
