"""Triggered agents: run a deployed agent on new stream entries, on a schedule, or on an HTTP call."""
