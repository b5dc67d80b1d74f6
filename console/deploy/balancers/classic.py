"""A classic ELB as a Balancer: instances registered with the load balancer itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from console.deploy.balancers.base import Balancer, Settings, time_to_healthy
from console.model import LoadBalancerKind

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


class ClassicElb(Balancer):
    kind = LoadBalancerKind.CLASSIC
    what = "classic ELB"

    @classmethod
    async def settings(cls, gateway: AwsGateway, names: Sequence[str]) -> list[Settings]:
        """Each named ELB's health check and connection draining."""
        response = await gateway.call(
            "elb", "describe_load_balancers", LoadBalancerNames=list(names)
        )
        found: list[Settings] = []
        for lb in response["LoadBalancerDescriptions"]:
            name = lb["LoadBalancerName"]
            check = lb.get("HealthCheck", {})
            healthy = time_to_healthy(check.get("Interval"), check.get("HealthyThreshold"))
            draining = (await gateway.classic_attributes(name)).get("ConnectionDraining", {})
            drain = int(draining.get("Timeout", 0)) if draining.get("Enabled") else 0
            found.append(Settings(name, name, healthy, drain))
        return found

    # The AWS calls are spelled out where they are made: tests/console/aws/test_iam.py reads
    # them from the code to check that the shipped IAM policies allow every one.
    async def register(self, instance_ids: Sequence[str]) -> None:
        await self.gateway.call(
            "elb", "register_instances_with_load_balancer", **self._instances(instance_ids)
        )

    async def deregister(self, instance_ids: Sequence[str]) -> None:
        await self.gateway.call(
            "elb", "deregister_instances_from_load_balancer", **self._instances(instance_ids)
        )

    def _instances(self, instance_ids: Sequence[str]) -> dict[str, Any]:
        return {
            "LoadBalancerName": self.name,
            "Instances": [{"InstanceId": i} for i in instance_ids],
        }

    async def health(self) -> dict[str, str]:
        states = await self.gateway.classic_health(self.name)
        return {s["InstanceId"]: s.get("State", "Unknown") for s in states}
