"""Shared fixtures: one embedded world per test session, configs that point at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.config import Config, load_config, write_world_config
from console.world import World

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo.toml"
EXAMPLE_CONFIG = ROOT / "config" / "example.toml"


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    """The demo fleet on a moto server on 127.0.0.1 (moto's state is per process)."""
    demo = World(load_config(DEMO_CONFIG))
    demo.start()
    yield demo
    demo.stop()


@pytest.fixture(scope="session")
def world_config_path(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world") / "world.toml"
    write_world_config(DEMO_CONFIG, world.endpoint_url, path)
    return path


@pytest.fixture(scope="session")
def world_config(world_config_path: Path) -> Config:
    return load_config(world_config_path)
