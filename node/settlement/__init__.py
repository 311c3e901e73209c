"""The node's side of settlement: claims for the jobs it ran, kept in LMDB and sent in batches."""
