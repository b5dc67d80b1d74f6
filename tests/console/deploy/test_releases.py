"""Releases: a project's AMIs newest first, where each runs, and resolving by identifier."""

from __future__ import annotations

import asyncio
import json

import pytest

from console.config import Config
from console.deploy.releases import list_releases, resolve_release
from console.errors import DeployError
from console.fleet.inventory import Fleet
from screens.main import run


async def test_releases_newest_first_with_where_they_run(world_config: Config) -> None:
    fleet = Fleet(world_config)
    try:
        snapshot = await fleet.refresh()
        gateway = await asyncio.to_thread(fleet.gateway, "prod1")
        releases = await list_releases(world_config, gateway, "checkout-api", snapshot)
    finally:
        fleet.close()
    assert [r.version for r in releases][:3] == ["5.2.3", "5.2.0", "5.1.0"]
    by_version = {r.version: r for r in releases}
    assert by_version["5.2.3"].clusters == ("staging", "qaprod1")
    assert by_version["5.2.0"].clusters == ("prod1", "prod2")
    assert by_version["5.1.0"].clusters == ()
    assert all(r.image_id.startswith("ami-") and r.created_at for r in releases)


async def test_resolve_by_version_and_by_image_id(world_config: Config) -> None:
    fleet = Fleet(world_config)
    try:
        gateway = await asyncio.to_thread(fleet.gateway, "staging")
        by_version = await resolve_release(world_config, gateway, "storefront", "staging", "2.14.0")
        by_id = await resolve_release(
            world_config, gateway, "storefront", "staging", by_version.image_id
        )
        assert by_id == by_version
        with pytest.raises(DeployError, match=r"unknown release '9\.9\.9' for storefront .*known"):
            await resolve_release(world_config, gateway, "storefront", "staging", "9.9.9")
        with pytest.raises(DeployError, match="unknown release 'ami-00000000deadbeef'"):
            await resolve_release(
                world_config, gateway, "storefront", "staging", "ami-00000000deadbeef"
            )
        other = await resolve_release(world_config, gateway, "checkout-api", "staging", "5.2.3")
        with pytest.raises(DeployError, match="belongs to project 'checkout-api'"):
            await resolve_release(world_config, gateway, "storefront", "staging", other.image_id)
    finally:
        fleet.close()


def test_releases_cli_json(world_config_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["releases", "search-api", "--json", "--config", str(world_config_path)])
    out = capsys.readouterr().out
    assert code == 0
    releases = json.loads(out)["releases"]
    assert [r["version"] for r in releases] == ["c93a5e8", "b7e0d13", "a41f9c2"]
    assert set(releases[0]) == {"version", "image_id", "created_at", "clusters"}
    assert releases[1]["clusters"] == ["prod1", "prod2"]


def test_releases_cli_unknown_project(
    world_config_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["releases", "nope", "--config", str(world_config_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "deploy-console: error: unknown project 'nope'"
