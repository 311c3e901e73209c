"""The Python SDK for developers and verifiers (not built yet: see issue 7)."""
