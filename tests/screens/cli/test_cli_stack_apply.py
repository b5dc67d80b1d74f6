"""`stack apply` as a person or CI runs it: the real command in a child process, against a
world of its own. The plan first, then the change queued, applied and on record; a config
change (the deregistration delay) reaches AWS; a protected cluster wants its typed name (or
--yes); a viewer is refused; bad input exits 2 in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.store import Store
from console.store.stack_changes import StackChange
from tests.conftest import ROOT
from tests.deploy_world import client, quick_seed, world_process

ERROR_PREFIX = "deploy-console: error: "
TIMEOUT = 180.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    workdir = tmp_path_factory.mktemp("cli-stack-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config, workdir / "world.toml"


def stacked(source: Path, target: Path, delay: str = "", access: str = "") -> Path:
    """The world's config (its pairs' stacks built by the world), without the world's own
    drain time standing in for every stack's (console/config/provisioning.world_tuned): the
    stacks' 1 s then differs from the config's; `delay`: storefront's in staging."""
    text = re.sub(r"(?m)^deregistration_delay_seconds = .*\n", "", source.read_text())
    if delay:
        pair = (
            '[projects.clusters.staging]\ntarget_groups = [\n    "storefront-staging",\n]\n'
            "stack = true\n"
        )
        assert pair in text  # as the world writes its config (tomli-w)
        text = text.replace(
            pair,
            pair.replace("stack = true", f'stack = {{ deregistration_delay = "{delay}" }}'),
            1,
        )
    if access:
        text = re.sub(r"(?ms)^\[access\]\n.*?(?=^\[)", f"[access]\n{access}\n", text, count=1)
    target.write_text(text)
    return target


def run(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "screens.main", *args, "--config", str(config)]
    return subprocess.run(
        [*argv, "--store", str(store)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def delay(config: Config, group: str) -> str:
    elbv2 = client(config, "staging", "elbv2")
    arn = elbv2.describe_target_groups(Names=[group])["TargetGroups"][0]["TargetGroupArn"]
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    return {a["Key"]: a["Value"] for a in attributes}["deregistration_delay.timeout_seconds"]


def test_apply_changes_the_stack_and_aws_has_it(world: tuple[Config, Path], tmp_path: Path) -> None:
    config, source = world
    store = tmp_path / "store.db"
    changed = stacked(source, tmp_path / "changed.toml", delay="45s")
    done = run("stack", "apply", "storefront", "staging", "--wait", config=changed, store=store)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # The plan first, as `stack plan` shows it; then the change queued and followed.
    assert "stack dc-storefront-staging (storefront in staging):" in out
    assert "~ modify TargetGroup (ElasticLoadBalancingV2::TargetGroup)" in out, out
    assert "deregistration_delay.timeout_seconds: 1 -> 45" in out, out
    assert re.search(r"queued d-\S+: stack change s-\S+ of dc-storefront-staging", out), out
    assert re.search(r"d-\S+: stack change s-\S+ of dc-storefront-staging \(storefront in", out)
    assert "stack | executing change set dc-storefront-staging-plan-" in out
    assert "succeeded: stack change" in out and "UPDATE_COMPLETE" in out
    # AWS has it: the stack's template and the target group itself.
    cloudformation = client(config, "staging", "cloudformation")
    body = cloudformation.get_template(StackName="dc-storefront-staging")["TemplateBody"]
    body = json.loads(body) if isinstance(body, str) else body
    attributes = body["Resources"]["TargetGroup"]["Properties"]["TargetGroupAttributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "45"} in attributes
    assert delay(config, "storefront-staging") == "45"
    # Nothing left to change: the plan says so and nothing is queued.
    again = run("stack", "apply", "storefront", "staging", config=changed, store=store)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no change" in again.stdout and "queued" not in again.stdout, again.stdout
    history = run("history", config=changed, store=store)
    assert re.search(r"storefront → staging\s+stack change s-\S+", history.stdout), history.stdout
    changes, actions = asyncio.run(on_record(store))
    assert [change.state for change in changes] == ["applied"]
    assert json.loads(changes[0].template) == body  # the template, stored with its change
    assert actions.count("stack.planned") == actions.count("stack.applied") == 1


async def on_record(path: Path) -> tuple[list[StackChange], list[str]]:
    async with await Store.open(path, create=False, read_only=True) as store:
        changes = await store.stack_changes.of_pair("storefront", "staging")
        return changes, [row.action for row in await store.audit_rows(project="storefront")]


def test_a_protected_cluster_wants_its_name_or_yes(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config = stacked(world[1], tmp_path / "stacked.toml")
    done = run("stack", "apply", "storefront", "prod1", config=config, store=tmp_path / "s.db")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"{ERROR_PREFIX}cluster prod1 is protected: pass --yes to apply to it"
    )
    assert "stack dc-storefront-prod1 (storefront in prod1):" in done.stdout  # the plan first
    assert "queued" not in done.stdout


def test_a_viewer_may_not_apply(world: tuple[Config, Path], tmp_path: Path) -> None:
    config = stacked(world[1], tmp_path / "viewers.toml", access='viewers = ["*"]')
    done = run("stack", "apply", "storefront", "staging", config=config, store=tmp_path / "s.db")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "refused:" in done.stderr and "may not deploy" in done.stderr
    assert "stack dc-" not in done.stdout  # refused before AWS was read


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("nope", "staging"), "unknown project"),
        (("search-api", "staging"), "has no stack"),
        (("storefront", "staging", "--reason", " "), "--reason needs the text"),
    ],
)
def test_bad_input_exits_2_in_one_line(
    world: tuple[Config, Path], tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    config = stacked(world[1], tmp_path / "stacked.toml")
    done = run("stack", "apply", *args, config=config, store=tmp_path / "s.db")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX) and said in lines[0], lines
    assert not (tmp_path / "s.db").exists()


async def test_through_a_runner_service_the_service_plans_and_applies(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    """On a shared host the runner service reads the plan and runs the change: the command
    shows the plan, confirms (--yes on a protected cluster) and follows the service."""
    from console.deploy.services import deploy_services
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner
    from console.servers.runner_door import RunnerDoor

    source = stacked(world[1], tmp_path / "stacked.toml")
    store, socket = tmp_path / "store.db", tmp_path / "run" / "runner.sock"
    served_config = load_config(source)
    async with deploy_services(served_config, store) as services:
        runner = Runner(services.engine, DeployQueue(services.store, served_config))
        door = RunnerDoor(runner, socket)
        await door.start()
        loop = asyncio.create_task(runner.run_forever())
        host = tmp_path / "host.toml"
        host.write_text(source.read_text() + f'\n[runner]\nsocket = "{socket}"\n')
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "screens.main", "stack", "apply", "storefront", "prod1",
                "--yes", "--wait", "--config", str(host), cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await door.close()
        changes = await services.store.stack_changes.of_pair("storefront", "prod1")
    said = out.decode()
    assert process.returncode == 0, said + err.decode()
    assert "stack dc-storefront-prod1 (storefront in prod1):" in said
    assert "succeeded: stack change" in said, said
    assert [change.state for change in changes] == ["applied"]
    stack = client(world[0], "prod1", "cloudformation").describe_stacks(
        StackName="dc-storefront-prod1"
    )["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"


def test_a_clusters_release_gate_does_not_hold_a_stack_change(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    """prod2's require_build asks about a release: a stack change has none, and goes on."""
    config = stacked(world[1], tmp_path / "stacked.toml")
    done = run(
        "stack", "apply", "storefront", "prod2", "--yes", "--wait",
        config=config, store=tmp_path / "s.db",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded: stack change" in done.stdout
