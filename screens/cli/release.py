"""`release build-status PROJECT RELEASE`: what CI said of a release's build (a release gate)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from console.config import Config
from console.errors import ConsoleError
from screens.cli.command_line import Commands, with_config

EXIT_PASSED = 0
EXIT_NOT_PASSED = 1


def register(commands: Commands) -> None:
    release = commands.add("release", "one release of a project: what its build says")
    nested = commands.nested(release, "release_command", required=True)
    status = nested.add(
        "build-status",
        "exit 0 when the release's AMI says its build passed (a require_build gate)",
        with_config(build_status_command),
    )
    status.add_argument("project")
    status.add_argument("release", help="a version (the AMI's Version tag) or an AMI id")
    status.add_argument("--cluster", metavar="NAME", help="the cluster's region (default: first)")
    status.add_argument(
        "--tag", default="BuildStatus", help="the AMI tag CI sets (default BuildStatus)"
    )
    status.add_argument("--passed", default="passed", help="its value for a passed build")


async def _build_status(config: Config, args: argparse.Namespace) -> tuple[str, str, str]:
    """(version, image id, the tag's value or "") of the release."""
    from console.deploy.releases import resolve_release
    from console.fleet.inventory import Fleet

    project = config.project(args.project)
    cluster = args.cluster or next(iter(project.clusters), None)
    if cluster is None:
        raise ConsoleError(f"project {project.name} is not configured in any cluster")
    if config.world is not None and config.cluster(cluster).endpoint_url is None:
        # The demo's own config, its world not started: never ask the real AWS instead.
        raise ConsoleError(
            f"{config.source} is the demo's config without its world (no endpoint_url): "
            "run it through `deploy-console demo` or `world --write-config`"
        )
    fleet = Fleet(config)
    try:
        gateway = await asyncio.to_thread(fleet.gateway, cluster)
        release = await resolve_release(config, gateway, project.name, cluster, args.release)
        found = await gateway.call("ec2", "describe_images", ImageIds=[release.image_id])
    finally:
        fleet.close()
    images: list[dict[str, Any]] = found.get("Images", [])
    tags: list[dict[str, str]] = images[0].get("Tags", []) if images else []
    value = next((str(t.get("Value", "")) for t in tags if t.get("Key") == args.tag), "")
    return release.version, release.image_id, value


def build_status_command(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 the build passed, 1 it did not (or says nothing), 2 bad input."""
    version, image_id, value = asyncio.run(_build_status(config, args))
    said = f"{args.tag}={value}" if value else f"no {args.tag} tag"
    passed = value == args.passed
    verdict = "build passed" if passed else "build did not pass"
    print(f"{args.project} {version} ({image_id}): {verdict} ({said})", flush=True)
    return EXIT_PASSED if passed else EXIT_NOT_PASSED
