"""`deploy-console config check`: validate the config and say what it holds, in one line."""

from __future__ import annotations

import argparse

from console.config import Config
from screens.cli.command_line import Commands, with_config


def register(commands: Commands) -> None:
    config = commands.add("config", "configuration commands", common=False)
    checks = commands.nested(config, "config_command", required=True, metavar=None)
    checks.add("check", "validate the config", with_config(check_command))


def check_command(config: Config, _args: argparse.Namespace) -> int:
    lb_count = sum(
        len(settings.load_balancers)
        for project in config.projects
        for settings in project.clusters.values()
    )
    protected = [cluster.name for cluster in config.clusters if cluster.protected]
    print(
        f"{config.source}: ok: {len(config.clusters)} clusters "
        f"({', '.join(config.cluster_names)}; protected: {', '.join(protected) or 'none'}), "
        f"{len(config.projects)} projects, {lb_count} load balancers"
    )
    return 0
