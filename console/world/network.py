"""The world's networks: per cluster a VPC, two subnets, two security groups and a key pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.config import ClusterConfig

# The public half of a throwaway key: the demo's key pairs need one, nobody holds the private.
DEMO_PUBLIC_KEY = (
    b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbQ1m2y1bGmO3G0k6dG6p2m6m3v8a3s8QhS0N9mJp1x demo"
)


@dataclass
class Network:
    vpc_id: str
    subnet_ids: dict[str, str]  # name -> id
    security_groups: dict[str, str]  # name -> id


def seed_network(ec2: Any, cluster: ClusterConfig, index: int) -> Network:
    """The cluster's network, numbered by its place in the config (10.10.0.0/16, 10.11...)."""
    tag = [
        {"Key": "Name", "Value": cluster.name},
        {"Key": "Environment", "Value": cluster.name},
    ]
    vpc = ec2.create_vpc(
        CidrBlock=f"10.{index + 10}.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": tag}],
    )["Vpc"]["VpcId"]
    subnets: dict[str, str] = {}
    for half, zone in enumerate(("a", "b")):
        name = f"{cluster.name}-app-{zone}"
        subnets[name] = ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.{index + 10}.{half * 128}.0/17",
            AvailabilityZone=f"{cluster.region}{zone}",
            TagSpecifications=[
                {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": name}]}
            ],
        )["Subnet"]["SubnetId"]
    groups: dict[str, str] = {}
    for role in ("web", "worker"):
        name = f"{cluster.name}-{role}"
        groups[name] = ec2.create_security_group(
            GroupName=name, Description=f"{role} instances in {cluster.name}", VpcId=vpc
        )["GroupId"]
    # Importing a public key is instant; create_key_pair makes moto generate an RSA key.
    ec2.import_key_pair(KeyName=f"deploy-{cluster.name}", PublicKeyMaterial=DEMO_PUBLIC_KEY)
    return Network(vpc, subnets, groups)
