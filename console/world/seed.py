"""Seeding the world's fleet through boto3: images, instances, load balancers, DNS, secrets."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from console.config import ClusterConfig, Config, ProjectConfig, WorldConfig, WorldEnv
from console.world import moto_patches as world_moto
from console.world.alarms import seed_alarms
from console.world.balancers import seed_load_balancers
from console.world.network import Network, seed_network
from console.world.stacks import newest_running_version, register, seed_stack, world_refs

DNS_CHANGES_PER_BATCH = 100

# A fixed timeline so that the demo (and its screenshots) look the same every time.
WORLD_EPOCH = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@dataclass
class SeedReport:
    instances: int = 0
    load_balancers: int = 0
    images: int = 0
    records: int = 0
    seconds: float = 0.0
    stopped: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    secrets: int = 0
    alarms: int = 0
    # The pairs' stacks (console/world/stacks.py) and the time their creation took.
    stacks: int = 0
    stack_seconds: float = 0.0


@dataclass
class Seeder:
    """Seeds the fleet that `world` describes for `config`'s projects and clusters, counting
    what it made in `report`; `client(service, region)` is the world's boto3 client."""

    config: Config
    world: WorldConfig
    client: Callable[[str, str], Any]
    report: SeedReport
    is_broken: Callable[[str, str], bool]
    # The world's hosted zones, name -> id (bare): made before the stacks that add records.
    zones: dict[str, str] = field(default_factory=dict)

    def seed(self) -> None:
        """Seed the images, then every cluster, then the DNS zone."""
        world = self.world
        images: dict[tuple[str, str, str], str] = {}  # (region, project, version) -> ami
        wanted = sorted(
            {
                (self.config.cluster(cluster_name).region, project.name, version)
                for project in self.config.projects
                if project.name in world.projects
                for cluster_name in project.clusters
                for version in world.projects[project.name].versions
            }
        )
        # Broken releases are built last: adding one shifts none of the ids seeded before.
        broken = [key for key in wanted if self.is_broken(key[1], key[2])]
        # Sequential on purpose: moto's generated ids then repeat from run to run, and
        # threads only contend for the GIL (measured slower, 6.2-6.6 s against 4.4-5.3 s).
        for key in wanted:
            if key not in broken:
                images[key] = self._seed_image(*key)
        self._seed_zones()  # before the stacks that add records to them
        per_cluster = [
            self._seed_cluster(cluster, index, images)
            for index, cluster in enumerate(self.config.clusters)
        ]
        self._seed_dns([record for records in per_cluster for record in records])
        for key in broken:
            images[key] = self._seed_image(*key)
        self._seed_secrets()
        self._seed_instance_profiles()
        self._seed_anchor_bucket()
        self.report.alarms = seed_alarms(self.config, self.client)

    def _seed_cluster(
        self, cluster: ClusterConfig, index: int, images: dict[tuple[str, str, str], str]
    ) -> list[tuple[str, str, list[str]]]:
        network = seed_network(self.client("ec2", cluster.region), cluster, index)
        dns_targets: list[tuple[str, str, list[str]]] = []
        for project in self.config.projects:
            if cluster.name not in project.clusters:
                continue
            spec = self.world.projects.get(project.name)
            env = spec.clusters.get(cluster.name) if spec else None
            versions = spec.versions if spec else ()
            settings = project.clusters[cluster.name]
            if settings.stack is not None:
                # The stack makes the load balancer and the record; the seed runs instances
                # and registers them in it, as a deploy would.
                version = newest_running_version(env, versions)
                image = images.get((cluster.region, project.name, version)) if version else None
                started = time.perf_counter()
                refs = world_refs(self.config, project, cluster, network, self.zones, image)
                stack = seed_stack(self.client, self.config, project, cluster, refs)
                self.report.stack_seconds += time.perf_counter() - started
                self.report.stacks += 1
                self.report.load_balancers += 1
                self.report.records += 1 if refs.hosted_zone_id else 0
                instance_ids, _ = self._seed_instances(
                    project, cluster, network, env, images, versions
                )
                register(self.client, cluster.region, stack, instance_ids)
                if env is not None:
                    self._break_some(cluster, instance_ids, env)
                continue
            instance_ids, addresses = self._seed_instances(
                project, cluster, network, env, images, versions
            )
            dns_name, made = seed_load_balancers(
                self.client, self.world, project, cluster, network, instance_ids
            )
            self.report.load_balancers += made
            if env is not None:
                self._break_some(cluster, instance_ids, env)
            if spec is not None:
                record = settings.dns or f"{spec.dns}.{cluster.name}.{self.world.domain}"
                if dns_name:
                    dns_targets.append((record, "CNAME", [dns_name]))
                elif addresses:
                    dns_targets.append((record, "A", addresses))
        return dns_targets

    def _seed_image(self, region: str, project: str, version: str) -> str:
        ec2 = self.client("ec2", region)
        spec = self.world.projects.get(project)
        # What CI said of the build (a require_build gate reads it): a listed one failed.
        build = "failed" if spec is not None and version in spec.failed_builds else "passed"
        image_id: str = ec2.register_image(
            Name=f"{project}-{version}",
            Description=f"{project} {version}, built by CircleCI",
            Architecture="x86_64",
            RootDeviceName="/dev/xvda",
        )["ImageId"]
        ec2.create_tags(
            Resources=[image_id],
            Tags=[
                {"Key": "Project", "Value": project},
                {"Key": "Version", "Value": version},
                {"Key": "BuiltBy", "Value": "circleci"},
                {"Key": "BuildStatus", "Value": build},
            ],
        )
        self.report.images += 1
        return image_id

    def _seed_instances(
        self,
        project: ProjectConfig,
        cluster: ClusterConfig,
        network: Network,
        env: WorldEnv | None,
        images: dict[tuple[str, str, str], str],
        versions: tuple[str, ...],
    ) -> tuple[list[str], list[str]]:
        if env is None or env.instances == 0:
            return [], []
        ec2 = self.client("ec2", cluster.region)
        launch = project.clusters[cluster.name].launch
        tags = self.config.tags
        batches: list[tuple[str, int]] = []
        current = env.instances - env.older
        if env.older:
            previous = versions[max(0, versions.index(env.version) - 1)]
            batches.append((previous, env.older))
        batches.append((env.version, current))
        ids: list[str] = []
        addresses: list[str] = []
        days_ago = {"staging": 1, "qaprod1": 3}.get(cluster.name, 9)
        for version, count in batches:
            if count <= 0:
                continue
            subnet = network.subnet_ids.get(launch.subnet if launch else "", "")
            subnet = subnet or next(iter(network.subnet_ids.values()))
            group_names = launch.security_groups if launch else ()
            group_ids = [
                network.security_groups[g] for g in group_names if g in network.security_groups
            ]
            response = ec2.run_instances(
                ImageId=images[(cluster.region, project.name, version)],
                MinCount=count,
                MaxCount=count,
                InstanceType=launch.instance_type if launch else "t3.small",
                SubnetId=subnet,
                SecurityGroupIds=group_ids,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": tags.project, "Value": project.name},
                            {"Key": tags.environment, "Value": cluster.name},
                            {"Key": tags.version, "Value": version},
                            {"Key": "Name", "Value": f"{project.name}-{cluster.name}"},
                            {"Key": "ManagedBy", "Value": "deploy-console"},
                        ],
                    }
                ],
            )
            for offset, instance in enumerate(response["Instances"]):
                ids.append(instance["InstanceId"])
                addresses.append(instance["PrivateIpAddress"])
                launched = WORLD_EPOCH + timedelta(
                    days=21 - days_ago - (2 if version != env.version else 0),
                    minutes=7 * len(ids) + offset,
                )
                world_moto.set_launch_time(instance["InstanceId"], cluster.region, launched)
            self.report.instances += count
        return ids, addresses

    def _break_some(self, cluster: ClusterConfig, instance_ids: list[str], env: WorldEnv) -> None:
        """The imperfections of a real fleet: a stopped instance, a failing health check."""
        newest_first = list(reversed(instance_ids))
        stopped = newest_first[: env.stopped]
        failing = newest_first[env.stopped : env.stopped + env.unhealthy]
        if stopped:
            self.client("ec2", cluster.region).stop_instances(InstanceIds=stopped)
            self.report.stopped.extend(stopped)
        for instance_id in failing:
            world_moto.fail_health_checks(instance_id)
            self.report.failing.append(instance_id)

    def _seed_zones(self) -> None:
        """The world's domain and each of [dns] zones, as public hosted zones."""
        route53 = self.client("route53", "us-east-1")
        names = [self.world.domain, *(z for z in self.config.dns.zones if z != self.world.domain)]
        for index, name in enumerate(names):
            suffix = f"-{index}" if index else ""
            zone = route53.create_hosted_zone(
                Name=f"{name}.",
                CallerReference=f"deploy-console-world-{self.world.seed}{suffix}",
                HostedZoneConfig={"Comment": "deploy-console demo fleet", "PrivateZone": False},
            )["HostedZone"]["Id"]
            self.zones[name] = str(zone).removeprefix("/hostedzone/")

    def _seed_dns(self, records: list[tuple[str, str, list[str]]]) -> None:
        """The records of the pairs without a stack (a stack makes its own)."""
        if not records:
            return
        route53 = self.client("route53", "us-east-1")
        zone = self.zones[self.world.domain]
        # Route 53 takes at most 1,000 records per batch, and an UPSERT counts twice.
        for start in range(0, len(records), DNS_CHANGES_PER_BATCH):
            batch = records[start : start + DNS_CHANGES_PER_BATCH]
            route53.change_resource_record_sets(
                HostedZoneId=zone,
                ChangeBatch={
                    "Changes": [
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": name,
                                "Type": kind,
                                "TTL": 60,
                                "ResourceRecords": [{"Value": value} for value in values],
                            },
                        }
                        for name, kind, values in batch
                    ]
                },
            )
        self.report.records += len(records)

    def _seed_instance_profiles(self) -> None:
        """The IAM instance profiles that launch settings name (a deploy launches with them)."""
        names = sorted(
            {
                settings.launch.instance_profile
                for project in self.config.projects
                for settings in project.clusters.values()
                if settings.launch is not None and settings.launch.instance_profile
            }
        )
        iam = self.client("iam", "us-east-1")
        for name in names:
            iam.create_instance_profile(InstanceProfileName=name)

    def _seed_secrets(self) -> None:
        """One SecureString per secret a project's deploy reads, in each of its clusters' regions.

        The values are made up (deterministic, so that a demo run looks like the last one) and
        live only in SSM.
        """
        seeded: set[tuple[str, str]] = set()
        for project in self.config.projects:
            if project.deploy is None:
                continue
            for cluster_name in project.clusters:
                region = self.config.cluster(cluster_name).region
                for name, parameter in sorted(project.deploy_env(cluster_name)[1].items()):
                    if (region, parameter) in seeded:
                        continue
                    seeded.add((region, parameter))
                    digest = hashlib.sha256(
                        f"{self.world.seed}/{project.name}/{cluster_name}/{name}".encode()
                    ).hexdigest()[:12]
                    self.client("ssm", region).put_parameter(
                        Name=parameter,
                        Value=f"demo-{project.name}-{cluster_name}-{name.lower()}-{digest}",
                        Type="SecureString",
                        Description=f"{name} for {project.name} in {cluster_name} (demo)",
                    )
                    self.report.secrets += 1

    def _seed_anchor_bucket(self) -> None:
        """The S3 bucket [audit] anchors the audit chain in, as a real one should be: with
        Object Lock (which turns versioning on), so that no anchor version can be deleted."""
        settings = self.config.audit
        if settings.anchor_bucket is None or settings.anchor_cluster is None:
            return
        region = self.config.cluster(settings.anchor_cluster).region
        s3 = self.client("s3", region)
        location: dict[str, Any] = {}
        if region != "us-east-1":  # S3 refuses us-east-1 as an explicit location
            location["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(Bucket=settings.anchor_bucket, ObjectLockEnabledForBucket=True, **location)
