"""Editing a config file in place: a new [[projects]] entry as a patch, written atomically."""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
import stat
import tempfile
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Item, String, Table

from console.config.load import MAX_CONFIG_BYTES
from console.config.parse import LB_NAME_PATTERN, parse_config
from console.config.reader import NAME_PATTERN
from console.config.schema import Config, ProjectConfig
from console.errors import ConfigError

__all__ = ["ProjectAddition", "add_project", "patch_digest", "write_config"]

# A table header on its own line: [name] or [[name]] (a comment may follow).
HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class ProjectAddition:
    """A project added to a config file: the text before and after, the patch between them
    (a unified diff, paths as git shows them), and the config the new text loads as."""

    path: Path
    old: str
    new: str
    patch: str
    config: Config
    project: str
    clusters: tuple[str, ...]

    @property
    def digest(self) -> str:
        return patch_digest(self.patch)


def patch_digest(patch: str) -> str:
    return hashlib.sha256(patch.encode("utf-8")).hexdigest()


def add_project(
    config: Config, name: str, clusters: Sequence[str], repository: str | None = None
) -> ProjectAddition:
    """The config file with a new [[projects]] entry for `name` in `clusters` (each pair: a
    target group NAME-CLUSTER, a sibling's launch settings, desired = 1, its stack opted in:
    the sibling's stack table, else `stack = true`, its cluster's defaults),
    the rest of the file byte for byte as it was. ConfigError (one line) for a name already
    used, an unknown cluster, or a result that would not load."""
    _check_request(config, name, clusters)
    path = config.source.resolve()
    old = _read_text(path)
    document = tomlkit.parse(old)
    entry = _entry(config, document, name, clusters, repository)
    new = _inserted(old, entry)
    _check_result(path, old, new, entry)
    try:
        added = parse_config(tomllib.loads(new), config.source)
    except ConfigError as error:
        raise ConfigError(f"the new project would not load: {error.message}") from None
    patch = _patch(path, old, new)
    return ProjectAddition(path, old, new, patch, added, name, tuple(clusters))


def write_config(addition: ProjectAddition) -> None:
    """Replace the file with the new text atomically (a temporary file beside it, synced, then
    renamed over it, its mode kept): on any error the file is as it was, and no temporary file
    is left. Refused when the file changed since it was read."""
    path = addition.path
    if _read_text(path) != addition.old:
        raise ConfigError(f"{path}: changed while the patch was made: run the command again")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".new"
        )
    except OSError as error:
        raise ConfigError(f"{path}: cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as output:
            output.write(addition.new)
            output.flush()
            os.fsync(output.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {error.strerror or error}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _check_request(config: Config, name: str, clusters: Sequence[str]) -> None:
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{name!r} is not a project name (lower-case letters, digits and dashes, 1-63)"
        )
    if any(project.name == name for project in config.projects):
        raise ConfigError(f"project {name} is already in {config.source}")
    if not clusters:
        raise ConfigError("name at least one --cluster")
    for cluster in clusters:
        if cluster not in config.cluster_names:
            known = ", ".join(config.cluster_names)
            raise ConfigError(f"unknown cluster {cluster!r} (known: {known})")
        if not LB_NAME_PATTERN.match(f"{name}-{cluster}"):
            raise ConfigError(
                f"target group {name}-{cluster} would be longer than AWS's 32 characters"
            )
    if len(set(clusters)) != len(clusters):
        raise ConfigError("a --cluster is named twice")


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 2**20} MiB: not a config")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _sibling(config: Config, cluster: str) -> ProjectConfig:
    """The project whose pair in `cluster` the new one copies: the first behind a target
    group, else the first with launch settings."""
    candidates = [
        project
        for project in config.projects
        if cluster in project.clusters and project.clusters[cluster].launch is not None
    ]
    if not candidates:
        raise ConfigError(f"no project in {cluster} has launch settings to copy")
    behind_groups = [p for p in candidates if p.clusters[cluster].target_groups]
    return (behind_groups or candidates)[0]


def _raw_project(document: Any, name: str) -> Any:
    for project in document.get("projects", []):
        if project.get("name") == name:
            return project
    raise ConfigError(f"project {name} not found in the file")  # pragma: no cover (parsed)


def _renamed(item: Item, old: str, new: str) -> Item:
    """A copy of `item` (its layout kept; a [table] made an inline one, to sit among the
    pair's keys) with `old` replaced by `new` in its strings."""
    copied: Item = copy.deepcopy(item)
    if isinstance(copied, Table):
        inline = tomlkit.inline_table()
        inline.update(copied.unwrap())
        copied = inline
    _rename_in(copied, old, new)
    return copied


def _rename_in(container: Any, old: str, new: str) -> None:
    keys: Any = container.keys() if hasattr(container, "keys") else range(len(container))
    for key in list(keys):
        value = container[key]
        if isinstance(value, String) and old in str(value):
            container[key] = str(value).replace(old, new)
        elif hasattr(value, "keys") or isinstance(value, list):
            _rename_in(value, old, new)


def _entry(
    config: Config, document: Any, name: str, clusters: Sequence[str], repository: str | None
) -> Table:
    first = _sibling(config, clusters[0])
    entry = tomlkit.table()
    entry.add("name", name)
    entry.add("repository", repository or _repository(first, name))
    dns = _dns_pattern(config, name)
    if dns is not None:
        entry.add("dns", dns)
    pairs = tomlkit.table(is_super_table=True)
    for cluster in clusters:
        sibling = _sibling(config, cluster)
        raw = _raw_project(document, sibling.name)["clusters"][cluster]
        pair = tomlkit.table()
        pair.add("target_groups", [f"{name}-{cluster}"])
        pair.add("launch", _renamed(raw["launch"], sibling.name, name))
        pair.add("desired", 1)
        # Its stack opted in: the sibling's own settings, else its cluster's defaults (true).
        own = raw.get("stack")
        pair.add("stack", _renamed(own, sibling.name, name) if hasattr(own, "keys") else True)
        pair.add(tomlkit.nl())
        pairs.add(cluster, pair)
    entry.add("clusters", pairs)
    return entry


def _repository(sibling: ProjectConfig, name: str) -> str:
    head, found, tail = sibling.repository.rpartition(sibling.name)
    if not found:
        raise ConfigError(
            f"{sibling.name}'s repository does not name it, so none can be made for {name}: "
            "pass --repository URL"
        )
    return f"{head}{name}{tail}"


def _dns_pattern(config: Config, name: str) -> str | None:
    """The other projects' `dns` pattern for the new one: theirs when it holds {project};
    else the most common after each one's first label, under `name` ("www.{cluster}.shop"
    and "api.{cluster}.shop" make "NAME.{cluster}.shop"); None when no project has one."""
    patterns = [project.dns for project in config.projects if project.dns]
    generic = [pattern for pattern in patterns if "{project}" in pattern]
    if generic:
        return Counter(generic).most_common(1)[0][0]
    tails = [pattern.split(".", 1)[1] for pattern in patterns if "." in pattern]
    if not tails:
        return None
    return f"{name}.{Counter(tails).most_common(1)[0][0]}"


def _inserted(old: str, entry: Table) -> str:
    """`old` with the entry after the last [[projects]] entry (before the comments that lead
    into the next table), or at the end."""
    document = tomlkit.document()
    projects = tomlkit.aot()
    projects.append(entry)
    document.append("projects", projects)
    text = tomlkit.dumps(document).rstrip("\n") + "\n"
    lines = old.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    last = end = None
    for index, line in enumerate(lines):
        match = HEADER.match(line)
        if match is None:
            continue
        name = match.group(2).replace(" ", "")
        if name == "projects" or name.startswith("projects."):
            last, end = index, None
        elif last is not None and end is None:
            end = index
    if last is None or end is None:
        before, after = lines, []
    else:
        cut = end
        while cut - 1 > last and (not lines[cut - 1].strip() or lines[cut - 1].lstrip()[:1] == "#"):
            cut -= 1
        before, after = lines[:cut], lines[cut:]
    gap = ["\n"] if before and before[-1].strip() else []
    tail = ["\n"] if after and after[0].strip() else []
    return "".join([*before, *gap, text, *tail, *after])


def _check_result(path: Path, old: str, new: str, entry: Table) -> None:
    """The new text reads as the old one plus the entry, nothing else moved or lost."""
    try:
        before, after = tomllib.loads(old), tomllib.loads(new)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    expected = copy.deepcopy(before)
    expected.setdefault("projects", []).append(entry.unwrap())
    if after != expected:
        raise ConfigError(f"{path}: the project could not be added without moving other tables")


def _patch(path: Path, old: str, new: str) -> str:
    """A unified diff, its paths relative to the git work tree holding the file (as `git diff`
    writes them, for `git apply`), else the file's name."""
    shown = path.name
    for folder in path.parents:
        if (folder / ".git").exists():
            shown = path.relative_to(folder).as_posix()
            break
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        f"a/{shown}",
        f"b/{shown}",
    )
    return "".join(lines)
