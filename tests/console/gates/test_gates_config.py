"""The gates' config: ticket checks, require_build and [[hooks]] load, and a mistake is one
line naming the file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from console.config import load_config
from console.errors import ConfigError
from tests.conftest import DEMO_CONFIG

CLUSTER = '[[clusters]]\nname = "prod9"\nregion = "us-east-1"\n'


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_checks_and_hooks_load(tmp_path: Path) -> None:
    text = CLUSTER + (
        'ticket = { required = true, check = { url = "https://jira.example/{ticket}" }, '
        'timeout = "5s" }\n'
        'require_build = { command = ["ci-says", "{project}", "{release}"], timeout = "2m" }\n'
        '[[hooks]]\non = ["pre-deploy", "rolled-back"]\ncommand = ["notify", "{cluster}"]\n'
        'timeout = 30\nclusters = ["prod9"]\n'
    )
    config = load_config(written(tmp_path, text))
    cluster = config.cluster("prod9")
    assert cluster.ticket is not None and cluster.ticket.check is not None
    assert cluster.ticket.check.url == "https://jira.example/{ticket}"
    assert cluster.ticket.check.timeout == 5
    assert cluster.require_build is not None
    assert cluster.require_build.command == ("ci-says", "{project}", "{release}")
    assert cluster.require_build.timeout == 120
    (hook,) = config.hooks
    assert (hook.name, hook.on, hook.timeout) == ("notify", ("pre-deploy", "rolled-back"), 30)
    assert hook.applies("pre-deploy", "shop", "prod9") and not hook.applies("failed", "x", "prod9")


def test_the_demo_gates_prod2_on_the_build() -> None:
    build = load_config(DEMO_CONFIG).cluster("prod2").require_build
    assert build is not None
    assert build.command[:3] == ("deploy-console", "release", "build-status")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            CLUSTER + 'require_build = { url = "https://ci/{build}" }\n',
            4,
            "clusters[0].require_build.url: unknown placeholder {build} (known: {project} "
            "{cluster} {release} {image_id} {ticket} {config})",
        ),
        (
            CLUSTER + 'require_build = { url = "https://ci/", command = ["x"] }\n',
            4,
            "clusters[0].require_build: needs exactly one of url or command",
        ),
        (
            CLUSTER + 'require_build = { command = ["x"], timeout = "soon" }\n',
            4,
            "clusters[0].require_build.timeout: must be a duration above 0 and at most 600s "
            '("5s", "2m"), not \'soon\'',
        ),
        (
            CLUSTER + 'ticket = { required = true, check = { url = "ftp://x/" } }\n',
            4,
            "clusters[0].ticket.check.url: must be an http(s) URL, not 'ftp://x/'",
        ),
        (
            CLUSTER + '\n[[hooks]]\non = ["pre-deply"]\ncommand = ["x"]\n',
            6,
            "hooks[0].on: unknown event 'pre-deply' (did you mean pre-deploy?)",
        ),
        (
            CLUSTER + '\n[[hooks]]\non = ["failed"]\ncommand = ["x"]\nclusters = ["prod8"]\n',
            8,
            "hooks[0].clusters: unknown cluster 'prod8'",
        ),
        (
            CLUSTER + '\n[[hooks]]\non = ["failed"]\ncommand = []\n',
            7,
            "hooks[0].command: must name a program (argv, no shell)",
        ),
    ],
    ids=["placeholder", "both", "timeout", "scheme", "event", "cluster", "empty-command"],
)
def test_a_mistake_is_one_line_with_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = written(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}:{line}: {message}"
    assert "\n" not in str(error.value)
    assert re.match(rf"^{re.escape(str(path))}:\d+: ", str(error.value))
