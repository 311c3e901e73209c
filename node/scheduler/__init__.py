"""Scheduling near data: job specs and lifecycle, placement rules, and (next) dispatch."""
