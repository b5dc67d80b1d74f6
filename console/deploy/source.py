"""What a deploy starts from: the pair's instances and the load balancers they serve in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.deploy.balancers import Balancer


@dataclass
class Source:
    """The project's instances before the deploy, and the load balancers they serve in."""

    instances: list[dict[str, Any]]
    serving: list[str]
    balancers: list[Balancer]
