"""A classic ELB as a Balancer: instances registered with the load balancer itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from console.deploy.balancers.base import Balancer, time_to_healthy
from console.model import LoadBalancerKind

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


class ClassicElb(Balancer):
    kind = LoadBalancerKind.CLASSIC
    what = "classic ELB"
    register_call = "register_instances_with_load_balancer"
    deregister_call = "deregister_instances_from_load_balancer"

    @classmethod
    async def read(cls, gateway: AwsGateway, names: Sequence[str]) -> list[Balancer]:
        """The named classic ELBs with their health check and connection draining."""
        if not names:
            return []
        response = await gateway.call(
            "elb", "describe_load_balancers", LoadBalancerNames=list(names)
        )
        found: list[Balancer] = []
        for lb in response["LoadBalancerDescriptions"]:
            name = lb["LoadBalancerName"]
            check = lb.get("HealthCheck", {})
            draining = (await gateway.classic_attributes(name)).get("ConnectionDraining", {})
            found.append(
                cls(
                    gateway,
                    name,
                    name,
                    time_to_healthy(check.get("Interval"), check.get("HealthyThreshold")),
                    int(draining.get("Timeout", 0)) if draining.get("Enabled") else 0,
                )
            )
        return found

    async def _send(self, call: str, instance_ids: Sequence[str]) -> None:
        instances = [{"InstanceId": i} for i in instance_ids]
        await self.gateway.call("elb", call, LoadBalancerName=self.name, Instances=instances)

    async def health(self) -> dict[str, str]:
        states = await self.gateway.classic_health(self.name)
        return {s["InstanceId"]: s.get("State", "Unknown") for s in states}
