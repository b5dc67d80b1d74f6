"""Configuration: both shipped files load; every mistake is one line naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.config import load_config
from screens.main import run
from tests.conftest import DEMO_CONFIG, EXAMPLE_CONFIG

VALID = """
[[clusters]]
name = "staging"
region = "us-east-1"

[[clusters]]
name = "prod1"
region = "us-east-1"
protected = true

[[projects]]
name = "storefront"
repository = "https://github.com/example/storefront"
[projects.clusters.staging]
target_groups = ["storefront-staging"]
"""


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "console.toml"
    path.write_text(text)
    code = run(["config", "check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.err


def one_line_error(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`config check` of `text` fails with exit 2 and one line naming the file: that line."""
    code, err = check(tmp_path, text, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(tmp_path / "console.toml") in lines[0]
    return lines[0]


def entry_point_check(path: Path) -> subprocess.CompletedProcess[str]:
    """`deploy-console config check` of `path` through the real entry point, in a process."""
    return subprocess.run(
        [sys.executable, "-m", "screens.main", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_config_is_the_original_fleet() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.cluster_names == ("staging", "qaprod1", "prod1", "prod2")
    assert [c.name for c in config.clusters if c.protected] == ["prod1", "prod2"]
    assert len(config.projects) == 9
    load_balancers = [
        lb for p in config.projects for s in p.clusters.values() for lb in s.load_balancers
    ]
    assert len(load_balancers) == 21
    classic = [lb for p in config.projects for s in p.clusters.values() for lb in s.classic_elbs]
    assert 0 < len(classic) < 21  # a mix of classic ELBs and target groups
    assert config.world is not None
    instances = sum(
        e.instances for w in config.world.projects.values() for e in w.clusters.values()
    )
    assert instances >= 24
    for name, spec in config.world.projects.items():
        assert len(spec.versions) >= 3, name
    running = {
        (name, cluster): env.version
        for name, spec in config.world.projects.items()
        for cluster, env in spec.clusters.items()
    }
    assert len(set(running.values())) > 9  # the clusters do not all run the same release


def test_example_config_loads_and_documents_every_field() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert config.world is None
    assert any(c.role_arn for c in config.clusters)
    assert any(c.profile for c in config.clusters)
    text = EXAMPLE_CONFIG.read_text()
    for field in (
        "refresh_seconds",
        "[tags]",
        "region",
        "profile",
        "role_arn",
        "protected",
        "endpoint_url",
        "repository",
        "description",
        "target_groups",
        "classic_elbs",
        "instance_type",
        "subnet",
        "security_groups",
        "key_name",
        "instance_profile",
        "[clusters.ssh]",
        "known_hosts",
        "jump_host",
        "connect_timeout",
        "[projects.deploy]",
        "migrate",
        "health_interval_seconds",
        "startup_timeout_seconds",
        "env_file",
        "secrets",
        "[engine]",
        "rollback_timeout_seconds",
        "lock_stale_seconds",
        "store",
    ):
        assert field in text, field


def test_config_check_prints_a_summary_then_each_clusters_aws_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["config", "check", "--config", str(DEMO_CONFIG)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 + 2 * 4  # the summary, then credentials and retries per cluster
    assert [line.split()[0] for line in out[1::2]] == ["staging", "qaprod1", "prod1", "prod2"]
    assert "4 clusters" in out[0] and "9 projects" in out[0] and "21 load balancers" in out[0]


def test_valid_minimal_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, VALID, capsys)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "colour = 'blue'\n" + VALID, ": colour: unknown key", id="unknown-top-level-key"
        ),
        pytest.param(
            VALID.replace(
                'region = "us-east-1"\n\n[[clusters]]',
                'region = "us-east-1"\nzone = "a"\n\n[[clusters]]',
                1,
            ),
            "clusters[0].zone: unknown key",
            id="unknown-cluster-key",
        ),
        pytest.param(
            VALID + 'classic_elb = ["x"]\n',
            "projects[0].clusters.staging.classic_elb: unknown key",
            id="unknown-key-in-project-cluster",
        ),
        pytest.param(
            VALID.replace("protected = true", 'protected = "yes"'),
            "clusters[1].protected: must be a boolean, not a string",
            id="wrong-type-bool",
        ),
        pytest.param(
            "refresh_seconds = '10'\n" + VALID,
            ": refresh_seconds: must be a number, not a string",
            id="wrong-type-number",
        ),
        pytest.param(
            VALID.replace(
                'target_groups = ["storefront-staging"]', 'target_groups = "storefront-staging"'
            ),
            "projects[0].clusters.staging.target_groups: must be a list, not a string",
            id="wrong-type-list",
        ),
        pytest.param(
            VALID.replace('region = "us-east-1"\nprotected', "protected", 1),
            "clusters[1].region: is required but missing",
            id="missing-region",
        ),
        pytest.param(
            VALID.replace('repository = "https://github.com/example/storefront"\n', ""),
            "projects[0].repository: is required but missing",
            id="missing-repository",
        ),
        pytest.param(
            VALID.replace("[projects.clusters.staging]", "[projects.clusters.prod3]"),
            "projects[0].clusters.prod3: unknown cluster (known: staging, prod1)",
            id="unknown-cluster-name",
        ),
        pytest.param(
            VALID + '\n[[projects]]\nname = "storefront"\nrepository = "r"\n',
            "projects[1].name: duplicate project 'storefront'",
            id="duplicate-project",
        ),
        pytest.param(
            VALID + '\n[[clusters]]\nname = "prod1"\nregion = "eu-west-1"\n',
            "clusters[2].name: duplicate cluster 'prod1'",
            id="duplicate-cluster",
        ),
        pytest.param(
            VALID.replace('name = "storefront"', 'name = "Store Front"'),
            "projects[0].name: project name 'Store Front' must be lower-case",
            id="bad-name",
        ),
        pytest.param(
            "refresh_seconds = 10\n",
            "clusters: at least one [[clusters]] entry is required",
            id="no-clusters",
        ),
        pytest.param(
            "refresh_seconds = 0\n" + VALID,
            ": refresh_seconds: must be at least 1, not 0",
            id="refresh-too-small",
        ),
        pytest.param(
            VALID.replace(
                'region = "us-east-1"', 'region = "us-east-1"\nendpoint_url = "localhost:5000"', 1
            ),
            "clusters[0].endpoint_url: must be an http(s) URL",
            id="bad-endpoint",
        ),
        pytest.param(
            VALID + "[projects.clusters.staging.launch]\nsubnet = 'subnet-1'\n",
            "projects[0].clusters.staging.launch.instance_type: is required but missing",
            id="launch-missing-instance-type",
        ),
        pytest.param(
            VALID + "[world.projects.checkout]\nversions = ['1']\n",
            "world.projects.checkout: unknown project",
            id="world-unknown-project",
        ),
        pytest.param(
            VALID.replace("protected = true", "protected = true\n[clusters.ssh]\nuser = 'deploy'"),
            "clusters[1].ssh.key: is required but missing",
            id="ssh-missing-key",
        ),
        pytest.param(
            VALID.replace(
                "protected = true",
                "[clusters.ssh]\nuser = 'd'\nkey = 'k'\nknown_hosts = 'h'\njump_host = 'a b'",
            ),
            "clusters[1].ssh.jump_host: must be HOST or HOST:PORT",
            id="ssh-bad-jump-host",
        ),
        pytest.param(
            VALID + "[projects.deploy]\nstart = 'bin/start'\n",
            "projects[0].deploy.health: is required but missing",
            id="deploy-missing-health",
        ),
        pytest.param(
            VALID + "[projects.deploy]\nstart = 's'\nhealth = 'h'\nsecrets = { DB = 'db-pass' }\n",
            "projects[0].deploy.secrets.DB: must be an SSM parameter name starting with /",
            id="secret-not-a-parameter",
        ),
        pytest.param(
            VALID + "env = { 'BAD-NAME' = 'x' }\n",
            "projects[0].clusters.staging.env.BAD-NAME: is not a valid environment variable name",
            id="bad-env-name",
        ),
        pytest.param(
            "[engine]\npoll_seconds = 0\n" + VALID,
            "engine.poll_seconds: must be at least 0.05, not 0",
            id="engine-poll-too-small",
        ),
    ],
)
def test_config_mistakes_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    assert expected in one_line_error(tmp_path, text, capsys)


def test_invalid_toml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, VALID + "\n[[projects]\nname = 'x'\n", capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "invalid TOML" in err and "(at line 17, column 11)" in err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "no such config file"),
        ("directory", "is a directory"),
        ("binary", "not UTF-8"),
    ],
)
def test_unreadable_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, expected: str
) -> None:
    path = tmp_path / "console.toml"
    if setup == "directory":
        path.mkdir()
    elif setup == "binary":
        path.write_bytes(b"\xff\xfe\x00name")
    assert run(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err


def test_search_order_env_then_user_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from_env = tmp_path / "from-env.toml"
    from_env.write_text(VALID)
    monkeypatch.setenv("DEPLOY_CONSOLE_CONFIG", str(from_env))
    assert run(["config", "check"]) == 0
    assert str(from_env) in capsys.readouterr().out
    # --config wins over the environment
    assert run(["config", "check", "--config", str(DEMO_CONFIG)]) == 0
    assert str(DEMO_CONFIG) in capsys.readouterr().out
    # neither: the user config dir, which does not exist here
    monkeypatch.delenv("DEPLOY_CONSOLE_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert run(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert "no config found" in err and str(tmp_path / "xdg") in err


def test_real_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[[clusters]]\nname = 7\n")
    result = entry_point_check(path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"deploy-console: error: {path}:2: clusters[0].name: must be a string, not an integer"
    )


def test_ssh_and_deploy_settings(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    path.write_text(
        VALID.replace(
            "protected = true",
            "protected = true\n[clusters.ssh]\nuser = 'deploy'\nkey = 'keys/deploy'\n"
            "known_hosts = '/etc/ssh/known'\njump_host = 'bastion.example.com:2222'",
        )
        + "env = { APP_ENV = 'staging' }\n"
        + "[projects.deploy]\nstart = 'bin/start'\nhealth = 'bin/health'\n"
        + "env = { APP_ENV = 'production', LOG = 'info' }\n"
        + "secrets = { DB_PASSWORD = '/storefront/db' }\n"
    )
    config = load_config(path)
    ssh = config.cluster("prod1").ssh
    assert ssh is not None
    assert ssh.key == tmp_path / "keys" / "deploy"
    assert ssh.jump_address == ("bastion.example.com", 2222)
    plain, secrets = config.project("storefront").deploy_env("staging")
    assert plain == {"APP_ENV": "staging", "LOG": "info"}
    assert secrets == {"DB_PASSWORD": "/storefront/db"}
    assert config.project("storefront").deploy_env("prod1")[0]["APP_ENV"] == "production"
