"""The configure step over SSH: write the env file, configure, migrate, start, health command."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Protocol

from console.config import ClusterConfig, DeploySettings, ProjectConfig, SshSettings
from console.deploy.deployment import Cadence, Deployment
from console.errors import DeployError
from console.events import OutputLine

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


class RemoteHost(Protocol):
    async def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        on_line: Callable[[str, str], None] | None = None,
        timeout: float | None = None,
    ) -> int: ...


OpenHost = Callable[[SshSettings, str], AbstractAsyncContextManager[RemoteHost]]


async def configure(
    deployment: Deployment,
    gateway: AwsGateway,
    project: ProjectConfig,
    cluster: ClusterConfig,
    open_host: OpenHost,
) -> None:
    """Runs the project's deploy commands on every new instance; raises if one fails."""
    settings = project.deploy
    if settings is None:
        raise DeployError(f"project {project.name} has no [projects.deploy] commands")
    ssh = cluster.ssh
    if ssh is None:
        raise DeployError(f"cluster {cluster.name} has no [clusters.ssh] settings")
    plain, secret_names = project.deploy_env(cluster.name)
    async with deployment.io():
        secret_values = await _secrets(gateway, secret_names)
        for value in secret_values.values():
            deployment.masker.add(value)
        described = await gateway.describe_instances(
            [{"Name": "instance-id", "Values": deployment.new_ids}]
        )
    addresses = {raw["InstanceId"]: raw.get("PrivateIpAddress", "") for raw in described}
    env_text = "".join(
        f"{name}={shlex.quote(value)}\n"
        for name, value in sorted({**plain, **secret_values}.items())
    )
    async with AsyncExitStack() as stack:

        async def connect(instance_id: str) -> tuple[str, RemoteHost]:
            address = addresses.get(instance_id)
            if not address:
                raise DeployError(f"{instance_id} has no private address")
            async with deployment.io():
                host = await stack.enter_async_context(open_host(ssh, address))
            return instance_id, host

        hosts = dict(await asyncio.gather(*(connect(i) for i in deployment.new_ids)))
        remote = _Remote(deployment, settings, hosts)
        counts = f"{len(plain)} values, {len(secret_values)} from SSM"
        await remote.commands(env_text, counts)


class _Remote:
    """The new instances over SSH: their commands' output goes out as the deploy's output."""

    def __init__(
        self, deployment: Deployment, settings: DeploySettings, hosts: dict[str, RemoteHost]
    ) -> None:
        self.deployment = deployment
        self.settings = settings
        self.hosts = hosts

    async def commands(self, env_text: str, counts: str) -> None:
        """The deploy's commands in their order: env file, configure, migrate (first instance
        only), start, then the health command until it passes."""
        settings = self.settings
        write = f"umask 077 && cat > {shlex.quote(settings.env_file)}"
        await self.everywhere(f"write {settings.env_file} ({counts})", write, env_text)
        if settings.configure:
            await self.everywhere("configure", settings.configure)
        if settings.migrate:
            first = self.deployment.new_ids[0]
            await self.must(first, "migrate (first new instance only)", settings.migrate)
        await self.everywhere("start", settings.start)
        await asyncio.gather(*(self.healthy(i) for i in self.hosts))

    async def run(
        self,
        instance_id: str,
        what: str | None,
        command: str,
        timeout: float,
        stdin: str | None = None,
    ) -> int:
        deployment = self.deployment
        if what is not None:
            deployment.note(f"{instance_id}: {what}")

        def on_line(stream: str, line: str) -> None:
            deployment.emit(OutputLine(deployment.deploy_id, instance_id, line, stream))

        async with deployment.io():
            return await self.hosts[instance_id].run(
                command, stdin=stdin, on_line=on_line, timeout=timeout
            )

    async def must(
        self, instance_id: str, what: str, command: str, stdin: str | None = None
    ) -> None:
        timeout = self.settings.startup_timeout_seconds
        status = await self.run(instance_id, what, command, timeout, stdin)
        if status != 0:
            raise DeployError(f"{what} failed on {instance_id} (exit {status})")

    async def everywhere(self, what: str, command: str, stdin: str | None = None) -> None:
        await asyncio.gather(*(self.must(i, what, command, stdin) for i in self.hosts))

    async def healthy(self, instance_id: str) -> None:
        """Runs the health command until it passes, or fails after the startup timeout."""
        settings = self.settings
        deadline = time.monotonic() + settings.startup_timeout_seconds
        cadence = Cadence(settings.health_interval_seconds)
        attempt = 0
        while True:
            attempt += 1
            left = max(1.0, deadline - time.monotonic())
            # A person needs the first attempt and a pulse, not every retry named.
            what = (
                "health check"
                if attempt == 1
                else f"health check #{attempt}, still failing"
                if attempt % 5 == 0
                else None
            )
            status = await self.run(instance_id, what, settings.health, left)
            if status == 0:
                return
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"health command failed on {instance_id} for "
                    f"{settings.startup_timeout_seconds:.0f} s (last exit {status})"
                )
            await self.deployment.pause(cadence.delay())


async def _secrets(gateway: AwsGateway, names: dict[str, str]) -> dict[str, str]:
    """Environment name -> value of the SSM parameters `names` maps them to."""
    if not names:
        return {}
    wanted = sorted(set(names.values()))
    values: dict[str, str] = {}
    for start in range(0, len(wanted), 10):  # GetParameters takes at most 10 names
        response = await gateway.call(
            "ssm", "get_parameters", Names=wanted[start : start + 10], WithDecryption=True
        )
        for parameter in response.get("Parameters", []):
            values[parameter["Name"]] = parameter["Value"]
        invalid = response.get("InvalidParameters", [])
        if invalid:
            raise DeployError(f"SSM parameter {invalid[0]} not found")
    return {env_name: values[parameter] for env_name, parameter in names.items()}
