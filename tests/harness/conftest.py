"""The ``planet`` fixture: an emulated WAN built for one test and torn down after it, checked gone.

Where network namespaces cannot be made (no root, no CAP_NET_ADMIN, no TUN) every test using it
skips with one line saying why."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.harness import netns
from node.harness.planet import Planet
from node.harness.topology import Topology, standard
from tests.harness.wan import skip_reason


@pytest.fixture
def planet(tmp_path: Path) -> Iterator[Callable[..., Planet]]:
    """``planet(topology=None, seed=0)`` builds one (the issue's planet by default)."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"WAN harness: {reason}")
    for name in netns.orphans():  # left by a run that was killed before its teardown
        netns.destroy(name)
    made: list[Planet] = []

    def build(topology: Topology | None = None, seed: int = 0) -> Planet:
        built = Planet(topology or standard(), tmp_path / f"planet{len(made)}", seed)
        made.append(built)
        built.up()
        return built

    yield build
    for built in made:
        built.down()
    leftovers = [item for built in made for item in built.leftovers()]
    assert not leftovers, f"the harness left these behind: {leftovers}"
