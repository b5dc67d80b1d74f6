"""An ALB/NLB target group as a Balancer: instances registered as targets of the group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from console.deploy.balancers.base import Balancer, Settings, time_to_healthy
from console.model import LoadBalancerKind

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


class TargetGroup(Balancer):
    kind = LoadBalancerKind.TARGET_GROUP
    what = "target group"

    @classmethod
    async def settings(cls, gateway: AwsGateway, names: Sequence[str]) -> list[Settings]:
        """Each named group's health check and deregistration delay."""
        response = await gateway.call("elbv2", "describe_target_groups", Names=list(names))
        found: list[Settings] = []
        for tg in response["TargetGroups"]:
            arn = tg["TargetGroupArn"]
            healthy = time_to_healthy(
                tg.get("HealthCheckIntervalSeconds"), tg.get("HealthyThresholdCount")
            )
            attributes = await gateway.target_group_attributes(arn)
            drain = int(attributes.get("deregistration_delay.timeout_seconds", 300))
            found.append(Settings(tg["TargetGroupName"], arn, healthy, drain))
        return found

    # The AWS calls are spelled out where they are made (see ClassicElb).
    async def register(self, instance_ids: Sequence[str]) -> None:
        await self.gateway.call("elbv2", "register_targets", **self._targets(instance_ids))

    async def deregister(self, instance_ids: Sequence[str]) -> None:
        await self.gateway.call("elbv2", "deregister_targets", **self._targets(instance_ids))

    def _targets(self, instance_ids: Sequence[str]) -> dict[str, Any]:
        return {"TargetGroupArn": self.key, "Targets": [{"Id": i} for i in instance_ids]}

    async def health(self) -> dict[str, str]:
        descriptions = await self.gateway.target_health(self.key)
        return {
            d["Target"]["Id"]: d.get("TargetHealth", {}).get("State", "unavailable")
            for d in descriptions
        }
