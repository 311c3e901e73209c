"""``mycel-agent.toml``: what an agent is, what it runs on, and the limits it runs under."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.errors import ManifestError
from agents.requirements import parse_requirement, parse_requires, wheel_package

MANIFEST_FILE = "mycel-agent.toml"
WHEELS_DIR = "wheels"  # a python bundle's own wheels, installed by the node into a read-only env
MAX_WHEELS = 64
MAX_WHEEL_BYTES = 256 << 20  # all of a bundle's wheels together
RUNTIMES = ("wasm", "python")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60
    memory_mib: int = 512
    wall_seconds: int = 120
    max_output_mib: int = 64
    processes: int = 1
    # files and directories an agent may create in its writable places: bytes alone do
    # not stop a flood of empty files, each of which costs an inode and a UnixFS block
    max_output_files: int = 10_000


_LIMIT_CAPS = {
    "cpu_seconds": 86400,
    "memory_mib": 65536,
    "wall_seconds": 86400,
    "max_output_mib": 65536,
    "processes": 256,
    "max_output_files": 1_000_000,
}


@dataclass(frozen=True)
class Needs:
    gpu: bool = False
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    runtime: str
    entrypoint: str
    description: str = ""
    limits: Limits = field(default_factory=Limits)
    needs: Needs = field(default_factory=Needs)
    # packages the agent needs from the node's python environment, e.g. ("numpy>=2",)
    requires: tuple[str, ...] = ()
    # the file names in the bundle's wheels/ (read from the directory, never written in the TOML)
    wheels: tuple[str, ...] = ()

    @property
    def node_requires(self) -> tuple[str, ...]:
        """The requirements the node's own environment must meet: those no bundled wheel provides
        (a bundled wheel shadows the node's copy, and :func:`parse` checked that it satisfies)."""
        bundled = {wheel_package(name, "wheels")[0] for name in self.wheels}
        return tuple(text for text in self.requires if parse_requirement(text, "requires").name not in bundled)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["needs"]["regions"] = list(self.needs.regions)
        if self.requires:
            record["requires"] = list(self.requires)
        else:  # absent, not empty: agents packed before the field existed keep their ids
            del record["requires"]
        if self.wheels:
            record["wheels"] = list(self.wheels)
        else:  # likewise: bundles without wheels keep their ids
            del record["wheels"]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Manifest:
        return parse(record, "manifest record")


def load(directory: Path) -> Manifest:
    path = directory / MANIFEST_FILE
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise ManifestError(f"{directory} has no {MANIFEST_FILE}; every agent bundle needs one") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path} is not valid TOML: {exc}") from None
    if "wheels" in data:
        raise ManifestError(f"{path}: wheels is not a manifest field; put the .whl files in the bundle's {WHEELS_DIR}/")
    manifest = parse({**data, "wheels": list(scan_wheels(directory))}, str(path))
    entry = directory / manifest.entrypoint
    if not entry.is_file():
        raise ManifestError(f"{path}: entrypoint {manifest.entrypoint!r} is not a file in the bundle")
    if entry.resolve().parent != directory.resolve() and directory.resolve() not in entry.resolve().parents:
        raise ManifestError(f"{path}: entrypoint {manifest.entrypoint!r} points outside the bundle")
    return manifest


def parse(data: dict[str, Any], where: str) -> Manifest:
    known = {"name", "version", "runtime", "entrypoint", "description", "limits", "needs", "requires", "wheels", "code"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(known - {'code', 'wheels'})}")
    name = _string(data, "name", where)
    if not _NAME.match(name):
        raise ManifestError(f"{where}: name {name!r} must be lower-case letters, digits, '.', '_' or '-' (max 64)")
    version = _string(data, "version", where)
    if not _VERSION.match(version):
        raise ManifestError(f"{where}: version {version!r} must look like 1.2.3")
    runtime = _string(data, "runtime", where)
    if runtime not in RUNTIMES:
        raise ManifestError(f"{where}: runtime {runtime!r} must be one of {list(RUNTIMES)}")
    entrypoint = _string(data, "entrypoint", where)
    if entrypoint.startswith("/") or ".." in Path(entrypoint).parts:
        raise ManifestError(f"{where}: entrypoint {entrypoint!r} must be a relative path inside the bundle")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ManifestError(f"{where}: description must be a string")
    requires = parse_requires(data.get("requires", []), where)
    if requires and runtime != "python":
        raise ManifestError(f"{where}: requires lists python packages; a {runtime} agent brings its own code")
    wheels = _wheels(data.get("wheels", []), requires, where)
    if wheels and runtime != "python":
        raise ManifestError(f"{where}: {WHEELS_DIR}/ holds python wheels; a {runtime} agent cannot use them")
    return Manifest(
        name,
        version,
        runtime,
        entrypoint,
        description,
        _limits(data.get("limits", {}), where),
        _needs(data.get("needs", {}), where),
        requires,
        wheels,
    )


def scan_wheels(directory: Path) -> tuple[str, ...]:
    """The wheel files in ``directory``'s ``wheels/``, bounded in count and bytes; sdists refused.

    Hidden entries are left out, as packing leaves them out of the bundle."""
    root = directory / WHEELS_DIR
    if not os.path.lexists(root):
        return ()
    if root.is_symlink() or not root.is_dir():
        raise ManifestError(f"{root} must be a directory of .whl files")
    names, total = [], 0
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if not entry.name.endswith(".whl") or not entry.is_file(follow_symlinks=False):
                raise ManifestError(
                    f"{root}/{entry.name} is not a wheel: the node installs wheels only and never builds from "
                    "source (python -m pip wheel --no-deps -w wheels/ PACKAGE makes one)"
                )
            names.append(entry.name)
            total += entry.stat(follow_symlinks=False).st_size
            if len(names) > MAX_WHEELS or total > MAX_WHEEL_BYTES:
                raise ManifestError(
                    f"{root}: a bundle brings at most {MAX_WHEELS} wheels of {MAX_WHEEL_BYTES >> 20} MiB in all"
                )
    return tuple(sorted(names))


def _wheels(value: Any, requires: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Validated wheel names: within the bounds, one wheel per distribution, and each bundled
    distribution that ``requires`` names at a version it allows (it shadows the node's)."""
    if not isinstance(value, list) or len(value) > MAX_WHEELS:
        raise ManifestError(f"{where}: wheels must be a list of at most {MAX_WHEELS} wheel file names")
    bundled: dict[str, str] = {}
    for filename in value:
        name, version = wheel_package(filename, where)
        if name in bundled:
            raise ManifestError(f"{where}: {WHEELS_DIR}/ holds two wheels of {name}; keep one")
        bundled[name] = version
    for text in requires:
        requirement = parse_requirement(text, where)
        brought = bundled.get(requirement.name)
        if brought is not None and not requirement.allows(brought):
            raise ManifestError(f"{where}: requires {text}, but {WHEELS_DIR}/ brings {requirement.name} {brought}")
    return tuple(sorted(value))


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: {key} is required and must be a non-empty string")
    return value


def _limits(section: Any, where: str) -> Limits:
    if not isinstance(section, dict):
        raise ManifestError(f"{where}: [limits] must be a table")
    return Limits(**check_limits(section, where))


def check_limits(section: Any, where: str) -> dict[str, int]:
    """Validate a table of limits, whole or partial: known names, integers within the hard caps.

    A manifest's ``[limits]`` and a job's overrides pass through this one check, so a limit a
    manifest may not declare cannot arrive as an override either.
    """
    if not isinstance(section, dict):
        raise ManifestError(f"{where}: limits must be a table")
    unknown = sorted(set(section) - set(_LIMIT_CAPS))
    if unknown:
        raise ManifestError(f"{where}: unknown limit(s) {unknown}; allowed: {sorted(_LIMIT_CAPS)}")
    values = {}
    for key, value in section.items():
        cap = _LIMIT_CAPS[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= cap:
            raise ManifestError(f"{where}: limits.{key} must be an integer from 1 to {cap} (got {value!r})")
        values[key] = value
    return values


def _needs(section: Any, where: str) -> Needs:
    if not isinstance(section, dict):
        raise ManifestError(f"{where}: [needs] must be a table")
    unknown = sorted(set(section) - {"gpu", "regions"})
    if unknown:
        raise ManifestError(f"{where}: unknown need(s) {unknown}; allowed: ['gpu', 'regions']")
    gpu = section.get("gpu", False)
    if not isinstance(gpu, bool):
        raise ManifestError(f"{where}: needs.gpu must be true or false (got {gpu!r})")
    regions = section.get("regions", [])
    if not isinstance(regions, (list, tuple)) or not all(isinstance(r, str) and r for r in regions):
        raise ManifestError(f"{where}: needs.regions must be a list of region names (got {regions!r})")
    return Needs(gpu, tuple(regions))
