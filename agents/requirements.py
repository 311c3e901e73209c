"""``requires = ["numpy>=2", "scikit-learn"]``: packages an agent needs, from the node's python env
or from the wheels its bundle brings (``wheels/*.whl``, named per the wheel spec).

A deliberately small subset of PEP 508 (a name and comma-separated version clauses, no
extras or markers), so that a manifest, a node and a client all read a requirement the
same way without a packaging library, and a hostile manifest cannot hand the node a
grammar to explore.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agents.errors import ManifestError

MAX_REQUIRES = 32
MAX_LENGTH = 100
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
_CLAUSE = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*([0-9]+(\.[0-9]+){0,3})\s*")
_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def normalize(name: str) -> str:
    """A distribution name as pip compares them: case and runs of ``-_.`` do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string (``2.1.3rc1`` -> (2, 1, 3))."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"[0-9]+", part)
        if digits is None:
            break
        numbers.append(int(digits[0]))
        if digits[0] != part:
            break
    return tuple(numbers)


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


@dataclass(frozen=True)
class Requirement:
    name: str  # normalized
    clauses: tuple[tuple[str, tuple[int, ...]], ...]
    text: str  # as the manifest wrote it

    def allows(self, version: str) -> bool:
        have = release(version)
        return all(_OPS[op](*_padded(have, wanted)) for op, wanted in self.clauses)

    def missing_from(self, packages: Mapping[str, str]) -> str | None:
        """Why ``packages`` (normalized name -> version) does not satisfy this, or None when it does."""
        version = packages.get(self.name)
        if version is None:
            return f"{self.text} (not installed)"
        if not self.allows(version):
            return f"{self.text} (has {version})"
        return None


def parse_requirement(text: str, where: str) -> Requirement:
    if not isinstance(text, str) or not 0 < len(text) <= MAX_LENGTH:
        raise ManifestError(f"{where}: each requires entry is a string of 1 to {MAX_LENGTH} characters")
    name_match = _NAME.match(text.strip())
    if name_match is None:
        raise ManifestError(f"{where}: requires entry {text!r} must start with a package name")
    rest = text.strip()[name_match.end() :]
    clauses = []
    if rest.strip():
        for clause in rest.split(","):
            match = _CLAUSE.fullmatch(clause)
            if match is None:
                raise ManifestError(
                    f"{where}: requires entry {text!r}: write NAME, or NAME followed by clauses like >=2,<3 "
                    "(==, !=, >=, <=, >, < and a numeric version)"
                )
            clauses.append((match[1], release(match[2])))
    return Requirement(normalize(name_match[0]), tuple(clauses), text.strip())


def parse_requires(value: object, where: str) -> tuple[str, ...]:
    """A manifest's ``requires``, validated; kept as written (the agent id covers the text)."""
    if not isinstance(value, list) or len(value) > MAX_REQUIRES:
        raise ManifestError(f"{where}: requires must be a list of at most {MAX_REQUIRES} package requirements")
    for item in value:
        parse_requirement(item, where)
    return tuple(item.strip() for item in value)


# {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl, as the wheel spec names them
_WHEEL = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]{0,62}[A-Za-z0-9])?)-(?P<version>[0-9][A-Za-z0-9_.!+]{0,40})"
    r"(?:-[0-9][A-Za-z0-9_.]{0,20})?-[A-Za-z0-9_.]{1,40}-[A-Za-z0-9_.]{1,40}-[A-Za-z0-9_.]{1,80}\.whl"
)


def wheel_package(filename: str, where: str) -> tuple[str, str]:
    """(normalized distribution name, version) from a wheel's file name, per the wheel spec.

    The name alone is read (no archive is opened), so a client, a scheduler and a node
    agree on what a bundle brings without holding its bytes."""
    match = _WHEEL.fullmatch(filename) if isinstance(filename, str) and len(filename) <= 255 else None
    if match is None:
        raise ManifestError(
            f"{where}: {filename!r} is not a wheel file name (NAME-VERSION-PYTHON-ABI-PLATFORM.whl; "
            "build one with: python -m pip wheel --no-deps -w wheels/ PACKAGE)"
        )
    return normalize(match["name"]), match["version"]


def bundled_packages(wheels: tuple[str, ...]) -> dict[str, str]:
    """What a bundle's wheels provide: normalized name -> version."""
    return dict(wheel_package(name, "wheels") for name in wheels)


def unmet(requires: tuple[str, ...], packages: Mapping[str, str]) -> list[str]:
    """The requirements ``packages`` does not meet, each with what it has instead."""
    problems = []
    for text in requires:
        problem = parse_requirement(text, "requires").missing_from(packages)
        if problem is not None:
            problems.append(problem)
    return problems
