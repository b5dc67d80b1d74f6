"""The names shell completion offers: projects, clusters and channels from the config; releases
and deploy ids from the store (its deploys and its last fleet snapshot), read-only, never AWS.

Completion runs on every Tab: it loads no boto3, aiosqlite or Textual, and anything wrong (no
config, a broken one, no store, a store being written) completes nothing rather than failing.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from console.config import Config, find_config
from console.config.paths import store_path

Choice = tuple[str, str]
"""A candidate and its description (zsh and fish show it; bash does not)."""

# The stored fleet snapshot as console/fleet/share.py encodes it (encode_snapshot): compressed
# JSON; each env is [project, cluster, health, instances, ...], each instance [id, state,
# image id, version, ...]. Another format is skipped (tests/screens/cli/test_completion.py
# writes a snapshot through encode_snapshot, so a change there fails that test).
SNAPSHOT_FORMAT = 1
# A store held by a writer is not waited for long: completion answers without its names.
STORE_TIMEOUT = 0.2
RECENT_DEPLOYS = 30


@dataclass
class NameSource:
    """Where names come from: the config and the store the command line names (--config,
    --store), else those the command would use."""

    config_path: str | None = None
    store_option: str | None = None
    _rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    @cached_property
    def config(self) -> Config | None:
        try:
            # As the shell would pass it, had the word been expanded (`--config ~/x.toml`).
            explicit = str(Path(self.config_path).expanduser()) if self.config_path else None
            return find_config(explicit)
        except Exception:  # a broken or missing config completes nothing
            return None

    def projects(self) -> list[Choice]:
        if self.config is None:
            return []
        return [(p.name, p.description) for p in self.config.projects]

    def clusters(self, project: str | None = None) -> list[Choice]:
        """The config's clusters; with a known project, those it is configured in."""
        config = self.config
        if config is None:
            return []
        names = config.cluster_names
        if project is not None:
            configured = next((p.clusters for p in config.projects if p.name == project), None)
            if configured is not None:
                names = tuple(name for name in names if name in configured)
        return [(name, _cluster_help(config, name)) for name in names]

    def channels(self) -> list[Choice]:
        if self.config is None:
            return []
        # WebhookChannel, EmailChannel, CommandChannel: "webhook", "email", "command".
        return [
            (name, type(channel).__name__.removesuffix("Channel").lower())
            for name, channel in self.config.notify.channels.items()
        ]

    def releases(self, project: str | None) -> list[Choice]:
        """Versions running in the last fleet snapshot and those deploys went to, newest
        deploy first (of `project` when known)."""
        found: dict[str, str] = {}
        for version, where in self._running(project):
            found.setdefault(version, where)
        query = "SELECT release, cluster, state FROM deploys"
        params: tuple[str, ...] = ()
        if project is not None:
            query, params = f"{query} WHERE project = ?", (project,)
        for release, cluster, state in self._query(f"{query} ORDER BY seq DESC LIMIT 500", params):
            found.setdefault(str(release), f"deployed to {cluster}: {state}")
        return list(found.items())

    def deploy_ids(self) -> list[Choice]:
        rows = self._query(
            "SELECT id, project, cluster, release, state FROM deploys ORDER BY seq DESC LIMIT ?",
            (RECENT_DEPLOYS,),
        )
        return [(str(i), f"{p} {c} {r} ({s})") for i, p, c, r, s in rows]

    def _running(self, project: str | None) -> Iterator[tuple[str, str]]:
        rows = self._query("SELECT snapshot FROM fleet_poller WHERE id = 1", ())
        if not rows or rows[0][0] is None:
            return
        try:
            data = json.loads(zlib.decompress(rows[0][0]))
        except (zlib.error, ValueError, TypeError):
            return
        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            return
        clusters: dict[str, list[str]] = {}
        with suppress(LookupError, TypeError):
            for env in data["envs"]:
                if project is None or env[0] == project:
                    for instance in env[3]:
                        if instance[3]:
                            clusters.setdefault(str(instance[3]), []).append(str(env[1]))
        for version, where in clusters.items():
            yield version, "running in " + ", ".join(dict.fromkeys(where))

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        key = f"{sql}|{params!r}"
        if key not in self._rows:
            self._rows[key] = self._read(sql, params)
        return self._rows[key]

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        path = self._store()
        if path is None or not path.is_file():
            return []
        try:
            # mode=ro: completion never creates, migrates or locks the store for writing.
            uri = f"{path.resolve().as_uri()}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True, timeout=STORE_TIMEOUT)) as db:
                return list(db.execute(sql, params).fetchall())
        except (sqlite3.Error, OSError, ValueError):
            return []

    def _store(self) -> Path | None:
        if self.store_option:
            return Path(self.store_option).expanduser()
        if self.config is None:
            return None
        return store_path(self.config.store, None)


def _cluster_help(config: Config, name: str) -> str:
    cluster = next((c for c in config.clusters if c.name == name), None)
    if cluster is None:
        return ""
    return f"{cluster.region}, protected" if cluster.protected else cluster.region
