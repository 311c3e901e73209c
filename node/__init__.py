"""The mycelnet node: daemon, networking, scheduler, HTTP API and the ``mycel`` CLI."""
