"""Releases: a project's AMIs by version, and resolving "by identifier" to one image."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.config import Config
from console.errors import DeployError
from console.model import FleetSnapshot, Release

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


def _tag(tags: list[dict[str, str]] | None, key: str) -> str | None:
    for tag in tags or ():
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


def _created(image: dict[str, Any]) -> datetime | None:
    raw = image.get("CreationDate")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def _release(config: Config, image: dict[str, Any]) -> Release:
    return Release(
        version=_tag(image.get("Tags"), config.tags.version) or image["ImageId"],
        image_id=image["ImageId"],
        created_at=_created(image),
        state=image.get("State", "unknown"),
        name=image.get("Name", ""),
    )


def _newest_first(releases: list[Release]) -> list[Release]:
    # Creation time first; the version string breaks ties (images registered in one second).
    return sorted(
        releases,
        key=lambda release: (
            release.created_at.timestamp() if release.created_at else 0.0,
            release.version,
        ),
        reverse=True,
    )


async def list_releases(
    config: Config,
    gateway: AwsGateway,
    project: str,
    snapshot: FleetSnapshot | None = None,
) -> list[Release]:
    """A project's releases in the gateway's account+region, newest first.

    With a fleet snapshot, each release says in which clusters it runs now.
    """
    config.project(project)
    images = await gateway.paginate(
        "ec2",
        "describe_images",
        "Images",
        1000,
        Owners=["self"],
        Filters=[{"Name": f"tag:{config.tags.project}", "Values": [project]}],
    )
    releases = _newest_first([_release(config, image) for image in images])
    if snapshot is None:
        return releases
    running: dict[str, list[str]] = {}
    for cluster in config.cluster_names:
        env = snapshot.env(project, cluster)
        for version in env.versions if env else ():
            running.setdefault(version, []).append(cluster)
    return [
        Release(
            r.version, r.image_id, r.created_at, r.state, r.name, tuple(running.get(r.version, ()))
        )
        for r in releases
    ]


async def resolve_release(
    config: Config, gateway: AwsGateway, project: str, cluster: str, identifier: str
) -> Release:
    """The one available image `identifier` names: an AMI id, or the project's version."""
    tags = config.tags
    if identifier.startswith("ami-"):
        try:
            response = await gateway.call("ec2", "describe_images", ImageIds=[identifier])
        except Exception as error:
            raise DeployError(
                f"unknown release {identifier!r} for {project} in {cluster}: {error}"
            ) from None
        images = response.get("Images", [])
        if images and _tag(images[0].get("Tags"), tags.project) not in (None, project):
            raise DeployError(
                f"release {identifier} belongs to project "
                f"{_tag(images[0].get('Tags'), tags.project)!r}, not {project!r}"
            )
    else:
        response = await gateway.call(
            "ec2",
            "describe_images",
            Owners=["self"],
            Filters=[
                {"Name": f"tag:{tags.project}", "Values": [project]},
                {"Name": f"tag:{tags.version}", "Values": [identifier]},
            ],
        )
        images = response.get("Images", [])
    if not images:
        known = [r.version for r in await list_releases(config, gateway, project)]
        hint = f" (known: {', '.join(known[:8])})" if known else " (the project has none)"
        raise DeployError(f"unknown release {identifier!r} for {project} in {cluster}{hint}")
    release = _newest_first([_release(config, image) for image in images])[0]
    if release.state != "available":
        raise DeployError(
            f"release {release.version} ({release.image_id}) is {release.state}, not available"
        )
    return release
