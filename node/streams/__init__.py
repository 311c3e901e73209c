"""Streams: single-writer signed append-only logs, held at their origin and replicated by subscribers."""
