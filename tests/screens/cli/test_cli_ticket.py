"""`deploy --ticket`: a cluster that needs a change ticket refuses a deploy without one (or of
the wrong form) in one line, exit 2, before anything is queued; one given goes with the deploy
into the store, its audit rows and history."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from console.config import read_toml
from console.store import Store
from tests.conftest import DEMO_CONFIG, ROOT

ERROR_PREFIX = "deploy-console: error: "
TICKET = {"required": True, "pattern": "^CHG-[0-9]+$"}


def with_ticket(source: Path, destination: Path, cluster: str = "staging") -> Path:
    """A copy of a config whose `cluster` needs a CHG-nnn ticket."""
    data = read_toml(source)
    for entry in data["clusters"]:
        if entry["name"] == cluster:
            entry["ticket"] = TICKET
    with destination.open("wb") as output:
        tomli_w.dump(data, output)
    return destination


def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "screens.main", *args, "--config", str(config)]
    return subprocess.run(
        [*argv, "--store", str(store)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("ticket", "expected"),
    [
        ((), "cluster staging needs a change ticket (--ticket ID): nothing deployed"),
        (
            ("--ticket", "chg-12"),
            "ticket 'chg-12' does not match '^CHG-[0-9]+$' (cluster staging): nothing deployed",
        ),
        (
            ("--ticket", "CHG 12"),
            "ticket must be 1-128 printable characters without spaces: nothing deployed",
        ),
    ],
)
def test_a_missing_or_malformed_ticket_is_one_line_exit_2_and_queues_nothing(
    tmp_path: Path, ticket: tuple[str, ...], expected: str
) -> None:
    config = with_ticket(DEMO_CONFIG, tmp_path / "tickets.toml")
    store = tmp_path / "store.db"
    result = cli("deploy", "storefront", "staging", "2.15.0", *ticket, config=config, store=store)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [ERROR_PREFIX + expected]
    assert not store.exists(), "nothing queued: not even a store file"


def test_a_cluster_without_the_setting_still_checks_a_given_tickets_form(tmp_path: Path) -> None:
    config = with_ticket(DEMO_CONFIG, tmp_path / "tickets.toml")
    store = tmp_path / "store.db"
    result = cli(
        "deploy", "storefront", "qaprod1", "2.15.0", "--ticket", "a\tb", config=config, store=store
    )
    assert result.returncode == 2, result.stderr
    assert "ticket must be 1-128 printable characters" in result.stderr
    assert not store.exists()


def test_the_ticket_goes_with_the_deploy_into_store_audit_and_history(
    world_config_path: Path, tmp_path: Path
) -> None:
    config = with_ticket(world_config_path, tmp_path / "tickets.toml")
    store = tmp_path / "store.db"
    queued = cli(
        "deploy", "storefront", "staging", "2.15.0", "--ticket", "CHG-4711", "--no-wait",
        "--anyway", "--json", config=config, store=store,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    deploy_id = json.loads(queued.stdout.splitlines()[-1])["deploy_id"]

    shown = cli("history", deploy_id, "--json", config=config, store=store)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["ticket"] == "CHG-4711"
    text = cli("history", deploy_id, config=config, store=store)
    assert "  change ticket CHG-4711" in text.stdout.splitlines()

    async def audit() -> list[tuple[str, str | None]]:
        async with await Store.open(store, create=False, read_only=True) as opened:
            return [
                (row.action, row.ticket) for row in await opened.audit_rows(deploy_id=deploy_id)
            ]

    rows = asyncio.run(audit())
    assert rows and all(ticket == "CHG-4711" for _, ticket in rows), rows
