"""Agent bundles, sandboxed runtimes and execution receipts (not built yet: see issue 4)."""
