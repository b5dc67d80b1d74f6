"""An ALB/NLB target group as a Balancer: instances registered as targets of the group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from console.deploy.balancers.base import Balancer, time_to_healthy
from console.model import LoadBalancerKind

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


class TargetGroup(Balancer):
    kind = LoadBalancerKind.TARGET_GROUP
    what = "target group"

    @classmethod
    async def read(cls, gateway: AwsGateway, names: Sequence[str]) -> list[Balancer]:
        """The named target groups with their health check and deregistration delay."""
        if not names:
            return []
        response = await gateway.call("elbv2", "describe_target_groups", Names=list(names))
        found: list[Balancer] = []
        for tg in response["TargetGroups"]:
            attributes = await gateway.target_group_attributes(tg["TargetGroupArn"])
            found.append(
                cls(
                    gateway,
                    tg["TargetGroupName"],
                    tg["TargetGroupArn"],
                    time_to_healthy(
                        tg.get("HealthCheckIntervalSeconds"), tg.get("HealthyThresholdCount")
                    ),
                    int(attributes.get("deregistration_delay.timeout_seconds", 300)),
                )
            )
        return found

    async def register(self, instance_ids: Sequence[str]) -> None:
        await self.gateway.call(
            "elbv2",
            "register_targets",
            TargetGroupArn=self.key,
            Targets=[{"Id": i} for i in instance_ids],
        )

    async def deregister(self, instance_ids: Sequence[str]) -> None:
        await self.gateway.call(
            "elbv2",
            "deregister_targets",
            TargetGroupArn=self.key,
            Targets=[{"Id": i} for i in instance_ids],
        )

    async def health(self) -> dict[str, str]:
        descriptions = await self.gateway.target_health(self.key)
        return {
            d["Target"]["Id"]: d.get("TargetHealth", {}).get("State", "unavailable")
            for d in descriptions
        }
