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
    register_call = "register_targets"
    deregister_call = "deregister_targets"

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

    async def _send(self, call: str, instance_ids: Sequence[str]) -> None:
        targets = [{"Id": i} for i in instance_ids]
        await self.gateway.call("elbv2", call, TargetGroupArn=self.key, Targets=targets)

    async def health(self) -> dict[str, str]:
        descriptions = await self.gateway.target_health(self.key)
        return {
            d["Target"]["Id"]: d.get("TargetHealth", {}).get("State", "unavailable")
            for d in descriptions
        }
