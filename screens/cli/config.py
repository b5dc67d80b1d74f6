"""`deploy-console config check` and `config keys`: validate the config and say what it holds;
list every key binding with its keys in effect, for the config's [keymap]."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from console.config import Config
from screens.cli.command_line import Commands, error_line, with_config

if TYPE_CHECKING:
    from console.aws.credentials import CredentialSource


def register(commands: Commands) -> None:
    config = commands.add("config", "configuration commands", common=False)
    checks = commands.nested(config, "config_command", required=True, metavar=None)
    check = checks.add("check", "validate the config", with_config(check_command))
    check.add_argument("--json", action="store_true", help="machine-readable output")
    keys = checks.add(
        "keys",
        "list every key binding: its id (for [keymap]), keys in effect, where, what it does",
        with_config(keys_command),
    )
    keys.add_argument("--json", action="store_true", help="machine-readable output")


def check_json(config: Config, sources: list[CredentialSource]) -> dict[str, Any]:
    """What `config check --json` says of a valid config: its file, clusters (with where their
    AWS credentials and retry settings come from) and projects."""
    return {
        "ok": not any(source.problem for source in sources),
        "source": str(config.source),
        "clusters": [
            {
                "name": c.name,
                "region": c.region,
                "protected": c.protected,
                "credentials": source.source,
                "retries": source.retries,
                "problem": source.problem,
            }
            for c, source in zip(config.clusters, sources, strict=True)
        ],
        "projects": [
            {
                "name": project.name,
                "clusters": list(project.clusters),
                "load_balancers": sum(len(s.load_balancers) for s in project.clusters.values()),
            }
            for project in config.projects
        ],
    }


def check_command(config: Config, args: argparse.Namespace) -> int:
    if config.keymap.keys:  # the screens' bindings (and Textual) are read only to check one
        from screens.keymap import config_keymap

        config_keymap(config)  # the [keymap] names bindings the screens define, and keys
    lb_count = sum(
        len(settings.load_balancers)
        for project in config.projects
        for settings in project.clusters.values()
    )
    from console.aws.credentials import credential_source

    sources = [credential_source(cluster) for cluster in config.clusters]
    if args.json:
        from screens.cli.json_out import emit

        emit("config-check", **check_json(config, sources))
        return _problems(sources)
    protected = [cluster.name for cluster in config.clusters if cluster.protected]
    print(
        f"{config.source}: ok: {len(config.clusters)} clusters "
        f"({', '.join(config.cluster_names)}; protected: {', '.join(protected) or 'none'}), "
        f"{len(config.projects)} projects, {lb_count} load balancers"
    )
    width = max(len(source.cluster) for source in sources)
    for source in sources:
        print(f"  {source.cluster.ljust(width)}  credentials: {source.source}")
        print(f"  {''.ljust(width)}  retries: {source.retries}")
    return _problems(sources)


def _problems(sources: list[CredentialSource]) -> int:
    """Per cluster, where its AWS keys and retry settings come from (nothing is resolved):
    a retry setting AWS would reject fails the check (a profile this host lacks is said only:
    the config may be written for the console host)."""
    problems = [source for source in sources if source.problem]
    for source in problems:
        print(error_line(f"cluster {source.cluster}: {source.problem}"), file=sys.stderr)
    return 2 if problems else 0


def keys_command(config: Config, args: argparse.Namespace) -> int:
    """Plain columns, one binding a line (a header first): `| grep dashboard` keeps a
    screen's, and the first two columns are what a [keymap] line takes."""
    from screens.keymap import binding_lines

    lines = binding_lines(config)
    if args.json:
        from screens.cli.json_out import emit

        emit("config-keys", bindings=[
            {"id": line.id, "keys": line.keys, "where": line.where.split(","),
             "description": line.description, "default": line.default,
             "remapped": line.remapped}
            for line in lines
        ])  # fmt: skip
        return 0
    rows = [
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
    from screens.cli.tables import print_table

    print_table(("binding id", "keys", "where", "what it does"), rows)
    return 0
