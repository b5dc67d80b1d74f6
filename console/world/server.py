"""The embedded world: a moto server on 127.0.0.1 seeded with the demo fleet through boto3."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from console.config import ClusterConfig, Config, ProjectConfig, WorldConfig, WorldEnv
from console.errors import WorldError
from console.world import moto_patches as world_moto
from console.world.ssh import DEFAULT_ROUTES, WorldSsh, WorldSshThread

# Load balancer settings per cluster: tight in staging, AWS defaults in production.
TARGET_GROUP_SETTINGS = {
    "staging": {"interval": 10, "healthy": 2, "unhealthy": 2, "delay": 30},
    "qaprod1": {"interval": 15, "healthy": 3, "unhealthy": 2, "delay": 60},
}
PRODUCTION_TARGET_GROUP = {"interval": 30, "healthy": 5, "unhealthy": 2, "delay": 300}
CLASSIC_SETTINGS = {
    "staging": {"interval": 10, "healthy": 3, "unhealthy": 2, "draining": 30},
    "qaprod1": {"interval": 15, "healthy": 3, "unhealthy": 2, "draining": 60},
}
PRODUCTION_CLASSIC = {"interval": 30, "healthy": 10, "unhealthy": 2, "draining": 300}

# The public half of a throwaway key: the demo's key pairs need one, nobody holds the private.
DEMO_PUBLIC_KEY = (
    b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbQ1m2y1bGmO3G0k6dG6p2m6m3v8a3s8QhS0N9mJp1x demo"
)

DNS_CHANGES_PER_BATCH = 100
HEALTH_CHECK_TIMEOUT = 5

# A fixed timeline so that the demo (and its screenshots) look the same every time.
WORLD_EPOCH = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@dataclass
class _Network:
    vpc_id: str
    subnet_ids: dict[str, str]  # name -> id
    security_groups: dict[str, str]  # name -> id


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


class World:
    """A real AWS API endpoint on loopback, holding the fleet that `config.world` describes."""

    def __init__(self, config: Config, port: int = 0, world: WorldConfig | None = None) -> None:
        self.config = config
        self.world = world or config.world
        if self.world is None:
            raise WorldError(f"{config.source}: no [world] section to seed the embedded world from")
        self.port = port
        self._server: Any = None
        self.endpoint_url = ""
        self.report = SeedReport()
        self._clients: dict[tuple[str, str], Any] = {}
        self._boto_session: Any = None
        self._serving: world_moto.Serving | None = None
        self.ssh: WorldSsh | None = None
        self._ssh_thread: WorldSshThread | None = None
        self._root: Path | None = None

    def start(self, seed: bool = True) -> str:
        """Start the server and seed it; returns the endpoint URL.

        moto keeps its state per process: a second World started with seed=False serves the
        same fleet on another port (used to take one endpoint away while another stays).
        """
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto would load hundreds of public AMIs into every region: the demo wants its own.
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        world_moto.apply()
        self._check_port_free()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = port
        self.endpoint_url = f"http://{host}:{port}"
        if not seed:
            return self.endpoint_url
        started = time.perf_counter()
        self._post("/moto-api/reset")
        assert self.world is not None
        self._post(f"/moto-api/seed?a={self.world.seed}")
        world_moto.reset()
        self._seed()
        # Seeded instances were in service at once; from now on a registration takes time.
        world_moto.set_registration_seconds(self.world.registration_seconds)
        world_moto.set_serving(self._serving)
        self.report.seconds = time.perf_counter() - started
        return self.endpoint_url

    def start_ssh(self, root: Path | None = None) -> dict[str, str]:
        """Start the instances' SSH side (a jump host on 127.0.0.1); returns the settings a
        config needs to reach it ([clusters.ssh]). Sandboxes live under `root` (a fresh
        temporary directory by default, removed by stop())."""
        if root is None:
            root = self._root = Path(tempfile.mkdtemp(prefix="deploy-console-world-"))
        self.ssh = WorldSsh(
            root,
            world_moto.instance_for_address,
            self._image_for_instance,
            broken=self.is_broken,
            routes=self.routes,
        )
        self._ssh_thread = WorldSshThread(self.ssh)
        self._ssh_thread.start()
        self.set_serving(self.ssh.is_serving)
        return {
            "user": "deploy",
            "key": str(self.ssh.client_key_path),
            "known_hosts": str(self.ssh.known_hosts_path),
            "jump_host": self.ssh.jump_host,
        }

    def _image_for_instance(self, instance_id: str) -> tuple[str, str] | None:
        tags = world_moto.instance_tags(instance_id)
        if tags is None:
            return None
        project = tags.get(self.config.tags.project)
        version = tags.get(self.config.tags.version)
        return (project, version) if project and version else None

    def set_serving(self, serving: world_moto.Serving | None) -> None:
        """Let `serving(instance_id, path)` decide each instance's health check of `path` (the
        load balancer's health check path; None for a TCP check): True passes, False fails,
        None has no opinion (the seeded fleet's rules: failing instances fail, the others pass
        while running). Called on every health read, in the server's threads: it must be cheap
        and thread-safe, and must not call the world's API."""
        self._serving = serving
        world_moto.set_serving(serving)

    def routes(self, project: str, version: str) -> tuple[str, ...]:
        """The HTTP paths the world's release `version` of `project` answers 200 on."""
        assert self.world is not None
        spec = self.world.projects.get(project)
        if spec is None or version not in spec.routes:
            return DEFAULT_ROUTES
        return spec.routes[version]

    def is_broken(self, project: str, version: str) -> bool:
        """Whether the world's release `version` of `project` fails its health command."""
        assert self.world is not None
        spec = self.world.projects.get(project)
        return spec is not None and version in spec.broken

    def _check_port_free(self) -> None:
        # ThreadedMotoServer binds in its thread and waits forever if that fails: try first.
        if self.port == 0:
            return
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as error:
                raise WorldError(
                    f"cannot listen on 127.0.0.1:{self.port}: {error.strerror}"
                ) from None

    def stop(self) -> None:
        if self._ssh_thread is not None:
            self._ssh_thread.stop()
            self._ssh_thread = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _post(self, path: str) -> None:
        request = urllib.request.Request(self.endpoint_url + path, method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def client(self, service: str, region: str) -> Any:
        """One client per service and region: creating one costs about 0.3 s."""
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._new_client(service, region)
        return self._clients[key]

    def _new_client(self, service: str, region: str) -> Any:
        if self._boto_session is None:
            self._boto_session = boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._boto_session.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 3}),
        )

    def _seed(self) -> None:
        """Seed the images, then every cluster, then the DNS zone."""
        assert self.world is not None
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

    def _seed_cluster(
        self, cluster: ClusterConfig, index: int, images: dict[tuple[str, str, str], str]
    ) -> list[tuple[str, str, list[str]]]:
        assert self.world is not None
        network = self._seed_network(cluster, index)
        dns_targets: list[tuple[str, str, list[str]]] = []
        for project in self.config.projects:
            if cluster.name not in project.clusters:
                continue
            spec = self.world.projects.get(project.name)
            env = spec.clusters.get(cluster.name) if spec else None
            instance_ids, addresses = self._seed_instances(
                project, cluster, network, env, images, spec.versions if spec else ()
            )
            dns_name = self._seed_load_balancers(project, cluster, network, instance_ids)
            if env is not None:
                self._break_some(cluster, instance_ids, env)
            if spec is not None:
                record = f"{spec.dns}.{cluster.name}.{self.world.domain}"
                if dns_name:
                    dns_targets.append((record, "CNAME", [dns_name]))
                elif addresses:
                    dns_targets.append((record, "A", addresses))
        return dns_targets

    def _seed_network(self, cluster: ClusterConfig, index: int) -> _Network:
        ec2 = self.client("ec2", cluster.region)
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
        return _Network(vpc, subnets, groups)

    def _seed_image(self, region: str, project: str, version: str) -> str:
        ec2 = self.client("ec2", region)
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
            ],
        )
        self.report.images += 1
        return image_id

    def _seed_instances(
        self,
        project: ProjectConfig,
        cluster: ClusterConfig,
        network: _Network,
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

    def _seed_load_balancers(
        self,
        project: ProjectConfig,
        cluster: ClusterConfig,
        network: _Network,
        instance_ids: list[str],
    ) -> str:
        settings = project.clusters[cluster.name]
        dns_name = ""
        subnets = list(network.subnet_ids.values())
        web_group = network.security_groups[f"{cluster.name}-web"]
        production = cluster.protected
        if settings.classic_elbs:
            elb = self.client("elb", cluster.region)
            tuning = self._tuning(
                CLASSIC_SETTINGS.get(cluster.name, PRODUCTION_CLASSIC), "draining"
            )
            for name in settings.classic_elbs:
                created = elb.create_load_balancer(
                    LoadBalancerName=name,
                    Listeners=[
                        {
                            "Protocol": "HTTP",
                            "LoadBalancerPort": 80,
                            "InstanceProtocol": "HTTP",
                            "InstancePort": 80,
                        }
                    ],
                    Subnets=subnets,
                    SecurityGroups=[web_group],
                    Tags=[
                        {"Key": "Project", "Value": project.name},
                        {"Key": "Environment", "Value": cluster.name},
                    ],
                )
                dns_name = dns_name or created["DNSName"]
                elb.configure_health_check(
                    LoadBalancerName=name,
                    HealthCheck={
                        "Target": "HTTP:80/health",
                        "Interval": tuning["interval"],
                        "Timeout": tuning["timeout"],
                        "UnhealthyThreshold": tuning["unhealthy"],
                        "HealthyThreshold": tuning["healthy"],
                    },
                )
                elb.modify_load_balancer_attributes(
                    LoadBalancerName=name,
                    LoadBalancerAttributes={
                        # AWS takes a timeout of 1-3,600 s: a delay of 0 is draining off.
                        "ConnectionDraining": {
                            "Enabled": tuning["draining"] > 0,
                            "Timeout": max(1, tuning["draining"]),
                        }
                    },
                )
                if instance_ids:
                    elb.register_instances_with_load_balancer(
                        LoadBalancerName=name, Instances=[{"InstanceId": i} for i in instance_ids]
                    )
                self.report.load_balancers += 1
        if settings.target_groups:
            elbv2 = self.client("elbv2", cluster.region)
            tuning = self._tuning(
                TARGET_GROUP_SETTINGS.get(cluster.name, PRODUCTION_TARGET_GROUP), "delay"
            )
            for name in settings.target_groups:
                group_arn = elbv2.create_target_group(
                    Name=name,
                    Protocol="HTTP",
                    Port=80,
                    VpcId=network.vpc_id,
                    HealthCheckProtocol="HTTP",
                    HealthCheckPath="/health",
                    HealthCheckIntervalSeconds=tuning["interval"],
                    HealthCheckTimeoutSeconds=tuning["timeout"],
                    HealthyThresholdCount=tuning["healthy"],
                    UnhealthyThresholdCount=tuning["unhealthy"],
                    Matcher={"HttpCode": "200"},
                    TargetType="instance",
                )["TargetGroups"][0]["TargetGroupArn"]
                elbv2.modify_target_group_attributes(
                    TargetGroupArn=group_arn,
                    Attributes=[
                        {
                            "Key": "deregistration_delay.timeout_seconds",
                            "Value": str(tuning["delay"]),
                        }
                    ],
                )
                alb = elbv2.create_load_balancer(
                    Name=f"{name}-alb"[:32],
                    Subnets=subnets,
                    SecurityGroups=[web_group],
                    Scheme="internet-facing" if production else "internal",
                    Type="application",
                )["LoadBalancers"][0]
                elbv2.create_listener(
                    LoadBalancerArn=alb["LoadBalancerArn"],
                    Protocol="HTTP",
                    Port=80,
                    DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}],
                )
                dns_name = dns_name or alb["DNSName"]
                if instance_ids:
                    elbv2.register_targets(
                        TargetGroupArn=group_arn,
                        Targets=[{"Id": i, "Port": 80} for i in instance_ids],
                    )
                self.report.load_balancers += 1
        return dns_name

    def _tuning(self, defaults: dict[str, int], delay_key: str) -> dict[str, int]:
        """A cluster's load balancer settings with the world's overrides applied."""
        assert self.world is not None
        world = self.world
        tuning = dict(defaults)
        if world.health_check_interval_seconds is not None:
            tuning["interval"] = world.health_check_interval_seconds
        if world.healthy_threshold is not None:
            tuning["healthy"] = world.healthy_threshold
        if world.deregistration_delay_seconds is not None:
            tuning[delay_key] = world.deregistration_delay_seconds
        # AWS refuses a health check timeout that is not shorter than its interval.
        tuning["timeout"] = min(HEALTH_CHECK_TIMEOUT, tuning["interval"] - 1)
        return tuning

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

    def _seed_dns(self, records: list[tuple[str, str, list[str]]]) -> None:
        assert self.world is not None
        if not records:
            return
        route53 = self.client("route53", "us-east-1")
        zone = route53.create_hosted_zone(
            Name=f"{self.world.domain}.",
            CallerReference=f"deploy-console-world-{self.world.seed}",
            HostedZoneConfig={"Comment": "deploy-console demo fleet", "PrivateZone": False},
        )["HostedZone"]["Id"]
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
        self.report.records = len(records)

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
        assert self.world is not None
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
