"""The settlement contract and its Python client (not built yet: see issue 6)."""
