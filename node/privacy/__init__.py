"""Enforcement of private-data policies on this node: what it holds privately, whom it serves, what it runs."""
