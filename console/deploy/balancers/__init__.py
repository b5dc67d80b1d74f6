"""Load balancers behind one interface (Balancer): one class per kind, chosen here only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.config import ProjectClusterConfig
from console.deploy.balancers.base import GONE_STATES, Balancer, health_of
from console.deploy.balancers.classic import ClassicElb
from console.deploy.balancers.target_group import TargetGroup

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

__all__ = ["GONE_STATES", "Balancer", "ClassicElb", "TargetGroup", "health_of", "read_balancers"]


async def read_balancers(gateway: AwsGateway, settings: ProjectClusterConfig) -> list[Balancer]:
    """The pair's load balancers with their settings, classic ELBs first: the one place that
    knows which class serves which kind."""
    return [
        *await ClassicElb.read(gateway, settings.classic_elbs),
        *await TargetGroup.read(gateway, settings.target_groups),
    ]
