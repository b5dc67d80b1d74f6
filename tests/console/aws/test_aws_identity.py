"""AWS sees the person: the AssumeRole requests the console sends, read from moto's request log.

moto ignores SourceIdentity, so these tests read what reached the server: a world in a child
process records every request (moto's recorder) and lists the sessions it handed out.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pwd
import re
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import tomli_w

from console.config import Config, load_config, read_toml
from console.deploy.engine import DeployPlanner
from console.deploy.releases import list_releases
from console.deploy.services import deploy_services
from console.events import DeployFinished
from console.fleet.inventory import Fleet
from console.model import DeployRequest, DeployState
from tests.conftest import DEMO_CONFIG, EXAMPLE_CONFIG
from tests.console.aws.test_iam import actions, allowed
from tests.console.config.test_config import entry_point_check
from tests.deploy_world import world_process

ROLE = "arn:aws:iam::123456789012:role/deploy-console-poller"
DEPLOY_ROLE = "arn:aws:iam::123456789012:role/deploy-console-runner"
MFA = "arn:aws:iam::123456789012:mfa/alice"


@dataclass
class RecordedWorld:
    config: Config
    log: Path

    def _moto(self, path: str, method: str = "GET") -> bytes:
        endpoint = self.config.clusters[0].endpoint_url
        request = urllib.request.Request(f"{endpoint}{path}", method=method, data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            data: bytes = response.read()
        return data

    def start(self) -> None:
        self._moto("/moto-api/recorder/reset-recording", "POST")
        self._moto("/moto-api/recorder/start-recording", "POST")

    def requests(self) -> list[dict[str, Any]]:
        """Every request since start(): headers, url and the form of a Query-protocol body."""
        found = []
        for line in self.log.read_text().splitlines():
            entry = json.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode(errors="replace")
            form = {k: v[0] for k, v in parse_qs(body).items()}
            found.append({**entry, "form": form})
        return found

    def permissions(self) -> set[str]:
        """The IAM actions the recorded requests needed, e.g. "ec2:RunInstances" (STS aside:
        the trust policy covers AssumeRole)."""
        needed = set()
        for request in self.requests():
            if "/moto-api/" in request["url"]:
                continue  # the test's own look at moto's state
            headers = request["headers"]
            scope = headers["Authorization"].split("Credential=", 1)[1].split("/")
            service = scope[3]
            target = headers.get("X-Amz-Target", "")
            action = target.split(".")[-1] if target else request["form"].get("Action")
            if service == "route53":  # (dns) REST: the fleet's two reads, told by their path
                path = request["url"].split("?")[0].rstrip("/")
                action = "ListResourceRecordSets" if path.endswith("/rrset") else "ListHostedZones"
            if service != "sts":
                needed.add(f"{service}:{action}")
        return needed

    def assume_role_requests(self) -> list[dict[str, str]]:
        return [r["form"] for r in self.requests() if r["form"].get("Action") == "AssumeRole"]

    def session_of_key(self) -> dict[str, tuple[str, str]]:
        """Access key id -> (role, session name) of every session moto's STS handed out."""
        data = json.loads(self._moto("/moto-api/data.json"))
        return {
            s["access_key_id"]: (s["role_arn"], s["session_name"])
            for s in data["sts"]["AssumedRole"]
        }


@pytest.fixture(scope="module")
def recorded_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedWorld]:
    workdir = tmp_path_factory.mktemp("recorded-world")
    log = workdir / "moto-requests.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        # Read by moto when the child imports it; recording starts only when a test asks.
        patch.setenv("MOTO_RECORDER_FILEPATH", str(log))
        patch.delenv("MOTO_ENABLE_RECORDING", raising=False)
        with world_process(DEMO_CONFIG, workdir) as config:
            patch.undo()
            yield RecordedWorld(config, log)


def with_role(config: Config, **settings: Any) -> Config:
    """The config with every cluster assuming ROLE (plus `settings`: external_id, mfa_serial)."""
    clusters = tuple(dataclasses.replace(c, role_arn=ROLE, **settings) for c in config.clusters)
    return dataclasses.replace(config, clusters=clusters)


def os_account() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


async def test_a_deploy_acts_in_aws_as_the_person_who_asked(
    recorded_world: RecordedWorld, tmp_path: Path
) -> None:
    config = with_role(
        recorded_world.config, external_id="shop-7f3a9c", deploy_role_arn=DEPLOY_ROLE
    )
    recorded_world.start()
    actor = "alice (ssh SHA256:Zm9vYmFy from 127.0.0.1:50412)"
    async with deploy_services(config, tmp_path / "store.db") as services:
        events = [
            e
            async for e in services.engine.run(
                DeployRequest("storefront", "staging", "2.14.1", actor)
            )
        ]
    outcome = events[-1]
    assert isinstance(outcome, DeployFinished) and outcome.state is DeployState.SUCCEEDED, outcome
    assumed = recorded_world.assume_role_requests()
    assert assumed, "the deploy assumed no role"
    for form in assumed:
        assert form["RoleArn"] == DEPLOY_ROLE  # a deploy changes the fleet in the runner's role
        assert form["SourceIdentity"] == "alice"
        assert form["RoleSessionName"] == "deploy-console-alice"
        assert form["ExternalId"] == "shop-7f3a9c"
        assert "SerialNumber" not in form and "TokenCode" not in form
    # The calls that change the fleet were signed with alice's session of the deploy role.
    sessions = recorded_world.session_of_key()
    changes = [
        r
        for r in recorded_world.requests()
        if r["form"].get("Action") in ("RunInstances", "TerminateInstances")
    ]
    assert {r["form"]["Action"] for r in changes} == {"RunInstances", "TerminateInstances"}
    for request in changes:
        key = request["headers"]["Authorization"].split("Credential=", 1)[1].split("/", 1)[0]
        assert sessions.get(key) == (DEPLOY_ROLE, "deploy-console-alice"), request["form"]
    # What the runner's policy allows is what a deploy needs.
    needed = recorded_world.permissions()
    assert "ec2:RunInstances" in needed and "ssm:GetParameters" in needed
    assert not [a for a in needed if not allowed(a, actions("runner"))]


async def test_reading_the_fleet_needs_only_the_poller_policy(
    recorded_world: RecordedWorld,
) -> None:
    recorded_world.start()
    fleet = Fleet(with_role(recorded_world.config, deploy_role_arn=DEPLOY_ROLE))
    try:
        snapshot = await fleet.refresh()
        await fleet.load_balancer_settings("partner-gateway", "prod1")
        gateway = fleet.gateway("staging")
        assert await list_releases(fleet.config, gateway, "storefront", snapshot)
        request = DeployRequest("storefront", "staging", "2.14.1", "alice")
        await DeployPlanner(fleet.config, fleet.gateway).plan(request)
    finally:
        fleet.close()
    needed = recorded_world.permissions()
    assert {"ec2:DescribeInstances", "elasticloadbalancing:DescribeTargetHealth"} <= needed
    assert not [a for a in needed if not allowed(a, actions("poller"))]
    # Reading, planning included, never assumes the role that may change the fleet.
    assumed = recorded_world.assume_role_requests()
    assert {form["RoleArn"] for form in assumed} == {ROLE}


async def test_the_poller_acts_as_the_os_account_whatever_the_environment(
    recorded_world: RecordedWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("USER", "LOGNAME", "DEPLOY_CONSOLE_USER"):
        monkeypatch.setenv(name, "mallory")
    recorded_world.start()
    fleet = Fleet(with_role(recorded_world.config))
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    assert all(c.error is None for c in snapshot.clusters)
    assumed = recorded_world.assume_role_requests()
    # One role session serves both regions of the demo, as the OS account the console runs as.
    assert len({c.region for c in recorded_world.config.clusters}) == 2
    (form,) = assumed
    assert form["SourceIdentity"] == os_account() != "mallory"
    assert form["RoleSessionName"] == f"deploy-console-{os_account()}"[:64]
    assert "ExternalId" not in form


async def test_session_names_keep_to_what_sts_accepts(recorded_world: RecordedWorld) -> None:
    recorded_world.start()
    fleet = Fleet(with_role(recorded_world.config))
    planner = DeployPlanner(fleet.config, fleet.gateway)
    try:
        for actor in ("Zoë Ünïcode/ops:admin (web from 10.0.0.9)", "x", "b" * 80):
            await planner.plan(DeployRequest("storefront", "staging", "2.14.1", actor))
    finally:
        fleet.close()
    assumed = recorded_world.assume_role_requests()
    assert [(a["SourceIdentity"], a["RoleSessionName"]) for a in assumed] == [
        ("Zo---n-code-ops-admin", "deploy-console-Zo---n-code-ops-admin"),
        ("x-", "deploy-console-x"),
        ("b" * 64, ("deploy-console-" + "b" * 80)[:64]),
    ]


async def test_mfa_asks_the_person_for_a_code(recorded_world: RecordedWorld) -> None:
    recorded_world.start()
    prompts: list[str] = []

    def person_at_terminal(prompt: str) -> str:
        prompts.append(prompt)
        return "123456"

    fleet = Fleet(with_role(recorded_world.config, mfa_serial=MFA), mfa_prompt=person_at_terminal)
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    assert all(c.error is None for c in snapshot.clusters)
    assert prompts == [f"Enter MFA code for {MFA}: "]
    (assumed,) = recorded_world.assume_role_requests()
    assert assumed["SerialNumber"] == MFA and assumed["TokenCode"] == "123456"


async def test_mfa_without_a_person_is_refused_in_one_line(recorded_world: RecordedWorld) -> None:
    recorded_world.start()
    fleet = Fleet(with_role(recorded_world.config, mfa_serial=MFA))
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    error = snapshot.cluster("prod1").error
    assert error is not None and "\n" not in error
    assert "no person is at a terminal" in error and "remove mfa_serial" in error
    assert recorded_world.assume_role_requests() == []


# -- the cluster settings: external_id and mfa_serial ---------------------------------------

CLUSTER = """
[[clusters]]
name = "prod1"
region = "us-east-1"
{settings}

[[projects]]
name = "storefront"
repository = "https://github.com/example/storefront"
[projects.clusters.prod1]
target_groups = ["storefront-prod1"]
"""


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(
            'external_id = "shop-7f3a9c"',
            "clusters[0].external_id: needs role_arn (the role the console reads with)",
            id="external-id-without-role",
        ),
        pytest.param(
            f'role_arn = "{ROLE}"\nexternal_id = "shop 7f3a9c"',
            "clusters[0].external_id: must be 2-1224 letters, digits or any of _+=,.@:/-",
            id="external-id-with-a-space",
        ),
        pytest.param(
            f'role_arn = "{ROLE}"\nexternal_id = "x"',
            "clusters[0].external_id: must be 2-1224",
            id="external-id-too-short",
        ),
        pytest.param(
            f'deploy_role_arn = "{DEPLOY_ROLE}"',
            "clusters[0].deploy_role_arn: needs role_arn (the role the console reads with)",
            id="deploy-role-without-role",
        ),
        pytest.param(
            f'role_arn = "{ROLE}"\ndeploy_role_arn = "deploy-console-runner"',
            "clusters[0].deploy_role_arn: must be an IAM role ARN (arn:aws:iam::...), not",
            id="deploy-role-not-an-arn",
        ),
        pytest.param(
            f'mfa_serial = "{MFA}"',
            "clusters[0].mfa_serial: needs role_arn",
            id="mfa-without-role",
        ),
        pytest.param(
            f'role_arn = "{ROLE}"\nmfa_serial = "alice"',
            "clusters[0].mfa_serial: must be an MFA device ARN",
            id="mfa-not-a-device",
        ),
        pytest.param(
            f'role_arn = "{ROLE}"\nmfa_serial = 123456',
            "clusters[0].mfa_serial: must be a string, not an integer",
            id="mfa-a-number",
        ),
    ],
)
def test_bad_assume_role_settings_are_one_line_with_exit_2(
    tmp_path: Path, settings: str, expected: str
) -> None:
    path = tmp_path / "console.toml"
    path.write_text(CLUSTER.format(settings=settings))
    result = entry_point_check(path)
    assert result.returncode == 2
    # The file and the line of the setting, then what is wrong with it.
    said = re.match(rf"deploy-console: error: {re.escape(str(path))}:\d+: (.*)", result.stderr)
    assert said is not None and said[1].startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_assume_role_settings_load_and_the_example_documents_them(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    settings = f'role_arn = "{ROLE}"\nexternal_id = "shop-7f3a9c"\nmfa_serial = "{MFA}"'
    path.write_text(CLUSTER.format(settings=settings))
    cluster = load_config(path).cluster("prod1")
    assert (cluster.external_id, cluster.mfa_serial) == ("shop-7f3a9c", MFA)
    example = load_config(EXAMPLE_CONFIG)
    assert any(c.external_id and c.deploy_role_arn for c in example.clusters)
    assert "mfa_serial" in EXAMPLE_CONFIG.read_text()


# -- MFA through the command line: a person at a terminal types the code --------------------


def mfa_config(world: RecordedWorld, path: Path) -> Path:
    data = read_toml(world.config.source)
    for cluster in data["clusters"]:
        cluster.update(role_arn=ROLE, mfa_serial=MFA)
    path.write_text(tomli_w.dumps(data))
    return path


def test_status_at_a_terminal_asks_for_the_mfa_code(
    recorded_world: RecordedWorld, tmp_path: Path
) -> None:
    config = mfa_config(recorded_world, tmp_path / "mfa.toml")
    recorded_world.start()
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "status", "--json", "--config", str(config)],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # no controlling terminal but this one on stdin
    )  # fmt: skip
    try:
        assert process.stderr is not None
        prompt = b""
        deadline = time.monotonic() + 60
        expected = f"Enter MFA code for {MFA}: ".encode()
        while not prompt.endswith(expected) and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 1)
            if not ready:
                continue
            chunk = os.read(process.stderr.fileno(), 4096)
            if not chunk:
                break  # it ended without asking
            prompt += chunk
        assert prompt == expected, prompt
        os.write(controller, b"654321\n")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # a failed check must not leave it waiting for a code
            process.kill()
            process.communicate()
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 0, err
    assert len(json.loads(out)["clusters"]) == 4
    (assumed,) = recorded_world.assume_role_requests()
    assert (assumed["SerialNumber"], assumed["TokenCode"]) == (MFA, "654321")
    assert b"654321" not in out + err  # typed without echo


def test_status_from_a_pipe_refuses_mfa_clusters_in_one_line_each(
    recorded_world: RecordedWorld, tmp_path: Path
) -> None:
    config = mfa_config(recorded_world, tmp_path / "mfa.toml")
    recorded_world.start()
    result = subprocess.run(
        [sys.executable, "-m", "screens.main", "status", "--config", str(config)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4 and "Traceback" not in result.stderr
    for line, cluster in zip(lines, ("staging", "qaprod1", "prod1", "prod2"), strict=True):
        assert line == (
            f"deploy-console: error: cluster {cluster}: assuming {ROLE} needs an MFA code "
            f"(mfa_serial) and no person is at a terminal to type it; the runner, sessions and "
            f"pipes have none: remove mfa_serial or run the command at a terminal"
        )
    assert recorded_world.assume_role_requests() == []
