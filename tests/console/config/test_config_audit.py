"""The rules in force are on record: each deploy's queueing carries the config's digest, and
the audit gets a `config` row whenever the rules change; `history --rules` shows when."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from console.config import Config, load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import Store
from tests.conftest import ROOT
from tests.console.test_access import with_access


async def test_a_rules_change_is_recorded_once_and_each_deploy_names_its_rules(
    tmp_path: Path,
) -> None:
    first = with_access(tmp_path)
    (tmp_path / "second").mkdir()
    second = with_access(tmp_path / "second", '\n[access]\nadmins = ["ada", "dana"]\n')
    store_path = tmp_path / "console.db"
    async with await Store.open(store_path) as store:

        async def queue(config: Config, deploy_id: str) -> None:
            request = DeployRequest("storefront", "staging", "2.15.0", "ada")
            await DeployQueue(store, config).enqueue(request, deploy_id)

        await queue(first, "d-1")
        await queue(first, "d-2")  # the same rules: no second config row
        await queue(second, "d-3")
        rows = await store.audit_rows()
        check = await store.check_audit()
    assert [(row.action, row.outcome) for row in rows] == [
        ("config", "first"), ("queue.enqueue", "queued"), ("queue.enqueue", "queued"),
        ("config", "changed"), ("queue.enqueue", "queued"),
    ]  # fmt: skip
    assert [row.config for row in rows if row.action == "queue.enqueue"] == [
        first.digest,
        first.digest,
        second.digest,
    ]
    assert first.digest != second.digest and first.rules != second.rules
    assert rows[0].reason.startswith(first.rules) and str(first.source) in rows[0].reason
    assert check.problem is None  # the digest is part of each row's hash
    listed = subprocess.run(
        [sys.executable, "-m", "screens.main", "history", "--rules", "--json",
         "--config", str(first.source), "--store", str(store_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    changes = json.loads(listed.stdout)["changes"]
    assert [(c["outcome"], c["config"], c["by"]) for c in changes] == [
        ("changed", second.digest, "ada"), ("first", first.digest, "ada")
    ]  # fmt: skip


def test_comments_do_not_change_the_digest_and_a_rule_does(tmp_path: Path) -> None:
    config = with_access(tmp_path)
    text = config.source.read_text()
    commented = tmp_path / "commented.toml"
    commented.write_text("# a comment changes nothing\n" + text)
    assert load_config(commented).digest == config.digest
    protected = tmp_path / "protected.toml"
    protected.write_text(text.replace("protected = true", "protected = false", 1))
    changed = load_config(protected)
    assert changed.digest != config.digest and changed.rules != config.rules
