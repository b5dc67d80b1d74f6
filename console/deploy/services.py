"""Wires the deploy engine to its adapters (AWS, SSH, the store) for the CLI and the console."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.access import Access, AccessDenied, Action
from console.config import Config, SshSettings, paths
from console.deploy.engine import DeployEngine, DeployPlanner, RemoteHost
from console.errors import StoreError
from console.fleet.inventory import Fleet
from console.identity import current_actor
from console.model import DeployRequest
from console.store import Store

STORE_FILE = paths.STORE_FILE


def actor() -> str:
    """Who acts, as the audit records it (console.identity): the OS account of this process, or
    the person a door (SSH, web) handed this session, e.g. "alice (ssh SHA256:... from
    127.0.0.1:50412)". Never read from the environment."""
    return str(current_actor())


def check_allowed(
    config: Config,
    store: Path,
    action: Action,
    cluster: str | None = None,
    *,
    project: str | None = None,
) -> str:
    """The caller's actor if their role allows `action`; otherwise the refusal is appended to
    the audit (who tried what, where) and AccessDenied raised. Checked before AWS is asked."""
    who = actor()
    try:
        Access(config).check(who, action, cluster, project=project)
    except AccessDenied as denied:
        asyncio.run(_record_denial(store, who, denied, cluster, project))
        raise
    return who


async def _record_denial(
    store: Path, who: str, denied: AccessDenied, cluster: str | None, project: str | None
) -> None:
    try:
        opened = await Store.open(store)
    except StoreError as error:
        unrecorded = f"{denied.message} (and the refusal is not in the audit: {error})"
        raise AccessDenied(unrecorded) from None
    async with opened:
        await opened.record_denial(who, denied.message, cluster=cluster, project=project)


def store_path(config: Config, explicit: str | None) -> Path:
    """--store, else the config's `store`, else the user data dir."""
    return paths.store_path(config.store, explicit)


@dataclass
class DeployServices:
    config: Config
    fleet: Fleet
    store: Store
    engine: DeployEngine


@asynccontextmanager
async def deploy_services(
    config: Config,
    store: Path,
    *,
    plan: DeployRequest | None = None,
    mfa_prompt: Callable[[str], str] | None = None,
    fleet: Fleet | None = None,
) -> AsyncIterator[DeployServices]:
    """The engine with a fleet (for AWS gateways) and an open store; all closed on exit.

    With `plan`, that request is planned first, before the store is opened: bad input (an
    unknown release, missing settings) is refused without creating anything, not even the
    store's file. `mfa_prompt` is given only where a person at a terminal can type a code.
    A `fleet` given (its role sessions already made, MFA already typed) stays open on exit.
    """
    own = fleet is None
    fleet = fleet or Fleet(config, mfa_prompt=mfa_prompt)
    try:
        if plan is not None:
            await DeployPlanner(config, fleet.gateway).plan(plan)
        opened = await Store.open(store)
        hosts = _Hosts()
        try:
            engine = DeployEngine(config, fleet.gateway, opened, hosts.open)
            yield DeployServices(config, fleet, opened, engine)
        finally:
            await hosts.close()
            await opened.close()
    finally:
        if own:
            fleet.close()


class _Hosts:
    """SSH to instances for the engine; asyncssh loads with the first connection (a console
    that never deploys never loads it). One jump-host connection per cluster is shared by
    every instance a deploy reaches (console.ssh.client.JumpHosts)."""

    def __init__(self) -> None:
        self._jumps: Any = None  # console.ssh.client.JumpHosts, made with the first connection

    def open(self, settings: SshSettings, address: str) -> AbstractAsyncContextManager[RemoteHost]:
        from console.ssh.client import JumpHosts, open_host

        if self._jumps is None:
            self._jumps = JumpHosts()
        return open_host(settings, address, jumps=self._jumps)

    async def close(self) -> None:
        if self._jumps is not None:
            await self._jumps.close()
