"""A pair's refs read through the gateway: the console builds the template the world built."""

from __future__ import annotations

import dataclasses
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from console.aws.gateway import AwsGateway
from console.config import Config, ProjectConfig
from console.errors import AwsError, ConfigError
from console.stacks.refs import resolve_refs
from console.stacks.template import build_template, stack_name
from console.world.server import World


async def test_every_demo_stack_is_the_template_the_console_builds(
    world: World, world_config: Config
) -> None:
    pairs = [
        (project.name, cluster)
        for project in world_config.projects
        for cluster, settings in project.clusters.items()
        if settings.stack is not None
    ]
    assert len(pairs) == 18
    with ThreadPoolExecutor(4) as executor:
        gateways = {c.name: AwsGateway(c, executor) for c in world_config.clusters}
        for project, cluster in pairs:
            gateway = gateways[cluster]
            refs = await resolve_refs(gateway, world_config, project, cluster)
            built = build_template(world_config, project, cluster, refs)
            stored = world.client("cloudformation", gateway.region).get_template(
                StackName=stack_name(project, cluster)
            )["TemplateBody"]
            stored = json.loads(stored) if isinstance(stored, str) else stored
            assert built == stored, f"{project} in {cluster}"
        # The image a launch template starts from: what the pair's newest instance runs; a
        # pair with none running names no image.
        refs = await resolve_refs(gateways["prod2"], world_config, "storefront", "prod2")
        assert refs.image_id is not None and len(refs.subnet_ids) == 2
        gateway = gateways["staging"]
        calls = sum(gateway.calls.values())
        await resolve_refs(gateway, world_config, "storefront", "staging")
        assert sum(gateway.calls.values()) - calls <= 5


async def test_refs_that_cannot_be_found_are_one_line(world_config: Config) -> None:
    project = world_config.project("storefront")
    pair = project.clusters["staging"]
    assert pair.launch is not None
    lost = dataclasses.replace(pair, launch=dataclasses.replace(pair.launch, subnet="nowhere"))
    elsewhere = dataclasses.replace(pair, dns="www.staging.example.com")
    with ThreadPoolExecutor(2) as executor:
        gateway = AwsGateway(world_config.cluster("staging"), executor)
        for changed, message in (
            (lost, "storefront in staging: no subnet named 'nowhere' (launch.subnet)"),
            (elsewhere, "no hosted zone for www.staging.example.com among the account's"),
        ):
            moved = dataclasses.replace(project, clusters={"staging": changed})
            config = _with(world_config, moved)
            with pytest.raises(AwsError, match=re.escape(message)):
                await resolve_refs(gateway, config, "storefront", "staging")
        with pytest.raises(ConfigError, match="notifications-worker in staging has no stack"):
            await resolve_refs(gateway, world_config, "notifications-worker", "staging")


def _with(config: Config, project: ProjectConfig) -> Config:
    others = tuple(p for p in config.projects if p.name != "storefront")
    return dataclasses.replace(config, projects=(*others, project))
