"""`project add NAME --cluster C [--write]`: the patch, the file written with its comments and
order kept (and still loading), the refusals, and nothing half-written when a write fails."""

from __future__ import annotations

import asyncio
import difflib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.store import Store
from screens.main import run
from tests.conftest import DEMO_CONFIG, need_tool

# The demo's projects with a `dns` pattern each: a new project follows it.
DNS = {
    "storefront": 'dns = "www.{cluster}.example.internal"',
    "checkout-api": 'dns = "api.{cluster}.example.internal"',
}


def _config(folder: Path, admins: str = '["*"]') -> Path:
    text = DEMO_CONFIG.read_text().replace('admins = ["*"]', f"admins = {admins}")
    for name, line in DNS.items():
        if line not in text:  # only what the demo lacks
            text = text.replace(f'name = "{name}"\n', f'name = "{name}"\n{line}\n', 1)
    path = folder / "config.toml"
    path.write_text(text)
    return path


def _audit(store: Path) -> list[Any]:
    async def read() -> list[Any]:
        async with await Store.open(store) as opened:
            return list(await opened.audit_rows())

    return asyncio.run(read()) if store.exists() else []


def _options(config: Path, store: Path) -> list[str]:
    return ["--config", str(config), "--store", str(store)]


def test_the_patch_applies_with_git_and_write_makes_the_same_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_tool("git")
    config = _config(tmp_path)
    before = config.read_text()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    store = tmp_path / "store.db"
    assert run(["project", "add", "newapp", "--cluster", "staging", *_options(config, store)]) == 0
    captured = capsys.readouterr()
    patch = captured.out
    assert config.read_text() == before and not store.exists()  # printed only
    assert "not written: `deploy-console project add ... --write` applies it" in captured.err
    assert patch.startswith("--- a/config.toml\n+++ b/config.toml\n@@ ")
    added = [line[1:] for line in patch.splitlines() if line.startswith("+")][1:]
    assert added == [
        "[[projects]]",
        'name = "newapp"',
        'repository = "https://github.com/example-shop/newapp"',
        'dns = "newapp.{cluster}.example.internal"',
        "",
        "[projects.clusters.staging]",
        'target_groups = ["newapp-staging"]',
        'launch = { instance_type = "t3.small", subnet = "staging-app-a", security_groups = '
        '["staging-web"], key_name = "deploy-staging", instance_profile = "newapp-staging" }',
        "desired = 1",
        "stack = true",
        "",
    ]
    (tmp_path / "add.patch").write_text(patch)
    subprocess.run(["git", "apply", "add.patch"], cwd=tmp_path, check=True)
    applied = config.read_text()

    config.write_text(before)
    assert run(["project", "add", "newapp", "--cluster", "staging", "--write",
                *_options(config, store)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    out = captured.out
    assert config.read_text() == applied
    assert out.startswith(patch)
    assert out[len(patch) :].splitlines() == [
        f"wrote {config}: project newapp in staging (audit #1, patch sha256:{_sha(patch)[:12]})",
    ]
    # No world behind the demo's config: the plan is not made (never the real AWS), and said.
    assert captured.err == (
        "deploy-console: plan: not made for staging: the demo's config without its world (no "
        "endpoint_url) (`deploy-console stack plan newapp staging` makes it)\n"
    )


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_write_keeps_comments_and_order_loads_and_is_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    before = config.read_text()
    store = tmp_path / "store.db"
    args = ["project", "add", "newapp", "--cluster", "staging", "--cluster", "prod2", "--write"]
    assert run([*args, *_options(config, store)]) == 0
    patch = capsys.readouterr().out.split("wrote ")[0]
    after = config.read_text()
    # Only lines added, in one block, before [world]: every comment and table where it was.
    opcodes = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines()).get_opcodes()
    assert [tag for tag, *_ in opcodes] == ["equal", "insert", "equal"]
    assert after.index("newapp") < after.index("\n[world]\n")
    assert after.index("# colour: how a cluster's column header") < after.index("newapp")
    loaded = load_config(config)
    assert [p.name for p in loaded.projects][-1] == "newapp"
    project = loaded.project("newapp")
    assert project.dns == "newapp.{cluster}.example.internal"
    prod2 = project.clusters["prod2"]
    assert prod2.target_groups == ("newapp-prod2",) and prod2.desired == 1
    assert prod2.dns == "newapp.prod2.example.internal" and prod2.stack is not None
    assert prod2.launch is not None and prod2.launch.instance_type == "m5.large"
    assert prod2.launch.instance_profile == "newapp-prod2"
    [row] = _audit(store)
    assert (row.action, row.project, row.cluster, row.outcome) == (
        "project.added", "newapp", None, "written"
    )  # fmt: skip
    assert row.reason == f"clusters staging, prod2 · patch sha256:{_sha(patch)} · {config}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["storefront", "--cluster", "staging"], "project storefront is already in"),
        (["newapp", "--cluster", "prod9"], "unknown cluster 'prod9' (known: staging, qaprod1"),
        (["New_App", "--cluster", "staging"], "'New_App' is not a project name"),
        (["a" * 30, "--cluster", "staging"], "would be longer than AWS's 32 characters"),
        (["newapp", "--cluster", "staging", "--cluster", "staging"], "named twice"),
        (["newapp"], "the following arguments are required: --cluster"),
    ],
)
def test_refusals_exit_2_in_one_line_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    config = _config(tmp_path)
    before = config.read_text()
    store = tmp_path / "store.db"
    assert run(["project", "add", *args, "--write", *_options(config, store)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("deploy-console: error: ") and message in captured.err
    assert config.read_text() == before and _audit(store) == []


def test_write_needs_an_admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, admins='["someone-else"]')
    before = config.read_text()
    store = tmp_path / "store.db"
    args = ["project", "add", "newapp", "--cluster", "staging", "--write"]
    assert run([*args, *_options(config, store)]) == 3
    err = capsys.readouterr().err
    assert "refused: " in err and "may not add a project (needs admin)" in err
    assert config.read_text() == before
    assert [(r.action, r.outcome) for r in _audit(store)] == [("denied", "refused")]


def test_a_failed_write_leaves_the_file_whole_and_no_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    before = config.read_text()
    store = tmp_path / "store.db"

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    args = ["project", "add", "newapp", "--cluster", "staging", "--write"]
    assert run([*args, *_options(config, store)]) == 2
    err = capsys.readouterr().err
    assert err == f"deploy-console: error: {config}: cannot write: No space left on device\n"
    assert config.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".config")) == []
    assert _audit(store) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_a_read_only_folder_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    config = _config(folder)
    before = config.read_text()
    folder.chmod(0o555)
    try:
        args = ["project", "add", "newapp", "--cluster", "staging", "--write"]
        assert run([*args, *_options(config, tmp_path / "store.db")]) == 2
    finally:
        folder.chmod(0o755)
    assert "cannot write: Permission denied" in capsys.readouterr().err
    assert config.read_text() == before and sorted(folder.iterdir()) == [config]
