"""Refuse nodes whose agent environment lacks a package the manifest ``requires``.

A node announces its environment's hash; the package list behind a hash is known here for
this node's own environment (and any other a caller supplies). A node whose environment is
not known here passes, and checks the requirement itself before it runs the agent
(:class:`agents.errors.MissingPackages`, a node-side refusal the job fails over from).
"""

from __future__ import annotations

from agents.requirements import unmet
from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if not context.requires:
        return None
    packages = context.environments.get(candidate.env) if candidate.env else None
    if packages is None:
        return None
    missing = unmet(context.requires, packages)
    return f"its python environment lacks {', '.join(missing)}" if missing else None
