"""Fixtures the UI test modules share."""

from __future__ import annotations

import pytest

from console.config import Config
from console.model import FleetSnapshot
from tests.screens.ui import read_demo_snapshot


@pytest.fixture(scope="module")
def demo_snapshot(world_config: Config) -> FleetSnapshot:
    """The demo world's fleet, read once a module."""
    return read_demo_snapshot(world_config)
