"""`deploy-console config check` and `config keys`: validate the config and say what it holds;
list every key binding with its keys in effect, for the config's [keymap]."""

from __future__ import annotations

import argparse
import sys

from console.config import Config
from screens.cli.command_line import Commands, error_line, with_config


def register(commands: Commands) -> None:
    config = commands.add("config", "configuration commands", common=False)
    checks = commands.nested(config, "config_command", required=True, metavar=None)
    checks.add("check", "validate the config", with_config(check_command))
    checks.add(
        "keys",
        "list every key binding: its id (for [keymap]), keys in effect, where, what it does",
        with_config(keys_command),
    )


def check_command(config: Config, _args: argparse.Namespace) -> int:
    if config.keymap.keys:  # the screens' bindings (and Textual) are read only to check one
        from screens.keymap import config_keymap

        config_keymap(config)  # the [keymap] names bindings the screens define, and keys
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
    return _print_credential_sources(config)


def _print_credential_sources(config: Config) -> int:
    """Per cluster, where its AWS keys and retry settings come from (nothing is resolved):
    a retry setting AWS would reject fails the check (a profile this host lacks is said only:
    the config may be written for the console host)."""
    from console.aws.credentials import credential_source

    sources = [credential_source(cluster) for cluster in config.clusters]
    width = max(len(source.cluster) for source in sources)
    for source in sources:
        print(f"  {source.cluster.ljust(width)}  credentials: {source.source}")
        print(f"  {''.ljust(width)}  retries: {source.retries}")
    problems = [source for source in sources if source.problem]
    for source in problems:
        print(error_line(f"cluster {source.cluster}: {source.problem}"), file=sys.stderr)
    return 2 if problems else 0


def keys_command(config: Config, _args: argparse.Namespace) -> int:
    """Plain columns, one binding a line (a header first): `| grep dashboard` keeps a
    screen's, and the first two columns are what a [keymap] line takes."""
    from screens.keymap import binding_lines

    lines = binding_lines(config)
    rows = [("binding id", "keys", "where", "what it does")] + [
        (
            line.id,
            line.keys,
            line.where,
            f"{line.description} (keymap; default {line.default})"
            if line.remapped
            else line.description,
        )
        for line in lines
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
    return 0
