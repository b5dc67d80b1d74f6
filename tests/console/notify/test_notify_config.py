"""The [notify] table: channels and routes read, and every mistake one line naming its file and
line; a password in the config text is refused (its value never repeated)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from console.config import load_config
from console.config.notify import EVENT_NAMES, EmailChannel, WebhookChannel, masked_url
from console.errors import ConfigError

BASE = """\
[[clusters]]
name = "staging"
region = "us-east-1"

[[clusters]]
name = "prod1"
region = "us-east-1"

"""

GOOD = """\
[notify.channels.ops]
type = "webhook"
url = "https://hooks.example.com/services/T000/B000/XXXXSECRET"
format = "text"

[notify.channels.oncall]
type = "email"
host = "smtp.example.com"
username = "deploys"
password_env = "SMTP_PASSWORD"
from = "deploys@example.com"
to = ["oncall@example.com"]

[notify.channels.pager]
type = "command"
command = ["/usr/local/bin/page", "--team", "web"]

[[notify.routes]]
clusters = ["prod1"]
events = ["failed", "rolled-back"]
channels = ["oncall", "pager"]

[[notify.routes]]
channels = ["ops"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text(BASE + text)
    return path


def test_channels_and_routes_are_read_and_route_per_cluster_and_event(tmp_path: Path) -> None:
    notify = load_config(write(tmp_path, GOOD)).notify
    ops, oncall = notify.channels["ops"], notify.channels["oncall"]
    assert isinstance(ops, WebhookChannel) and ops.format == "text"
    assert isinstance(oncall, EmailChannel) and oncall.starttls and oncall.port == 587
    assert notify.channels_for("failed", "prod1") == ["oncall", "pager", "ops"]
    assert notify.channels_for("succeeded", "prod1") == ["ops"]
    assert notify.channels_for("failed", "staging") == ["ops"]
    assert notify.channels_for("freeze-set", None) == ["ops"]
    # Where a channel sends is shown without the webhook's token.
    assert ops.where() == "https://hooks.example.com/…"
    assert "SECRET" not in masked_url(ops.url or "")


def test_the_events_named_are_the_issues_list() -> None:
    wanted = {"queued", "waiting-for-approval", "started", "baking", "succeeded", "failed",
              "rolled-back", "cancelled", "interrupted", "freeze-set", "freeze-lifted",
              "lock-taken", "lock-released"}  # fmt: skip
    assert wanted <= set(EVENT_NAMES)


def test_no_notify_table_means_no_channels(tmp_path: Path) -> None:
    notify = load_config(write(tmp_path, "")).notify
    assert notify.channels == {} and notify.channels_for("failed", "prod1") == []


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            '[notify.channels.mail]\ntype = "email"\nhost = "h"\nfrom = "a@b.c"\nto = ["d@e.f"]\n'
            'username = "u"\npassword = "hunter2-secret"\n',
            7,
            "notify.channels.mail.password: a secret never goes in the config text: use "
            'password_env = "NAME"',
        ),
        (
            '[notify.channels.hook]\ntype = "webhook"\nurl = "https://h.example/x"\n'
            'token = "abcdefgh"\n',
            4,
            "notify.channels.hook.token: a secret never goes in the config text",
        ),
        (
            '[notify.channels.hook]\ntype = "pigeon"\n',
            2,
            "notify.channels.hook.type: must be webhook, email or command, not 'pigeon'",
        ),
        (
            '[notify.channels.hook]\ntype = "webhook"\nurl = "ftp://h.example/secretpath"\n',
            3,
            "notify.channels.hook.url: must be an http(s) URL, not 'ftp://h.example/…'",
        ),
        (
            '[notify.channels.hook]\ntype = "webhook"\nurl = "https://h/x"\nformat = "xml"\n',
            4,
            "notify.channels.hook.format: must be json or text, not 'xml'",
        ),
        (
            '[notify.channels.mail]\ntype = "email"\nhost = "h"\nfrom = "a@b.c"\nto = ["d@e.f"]\n'
            'username = "u"\n',
            6,
            "notify.channels.mail.username: a login needs password_env or password_file",
        ),
        (
            '[notify.channels.hook]\ntype = "webhook"\nurl = "https://h/x"\n\n'
            '[[notify.routes]]\nchannels = ["hook", "slack"]\n',
            6,
            "notify.routes[0].channels: unknown channel 'slack' (channels: hook)",
        ),
        (
            '[notify.channels.hook]\ntype = "webhook"\nurl = "https://h/x"\n\n'
            '[[notify.routes]]\nchannels = ["hook"]\nevents = ["exploded"]\n',
            7,
            "notify.routes[0].events: unknown event 'exploded' (events: queued,",
        ),
        (
            '[notify.channels.hook]\ntype = "webhook"\nurl = "https://h/x"\n\n'
            '[[notify.routes]]\nchannels = ["hook"]\nclusters = ["prod9"]\n',
            7,
            "notify.routes[0].clusters: unknown cluster 'prod9' (known: staging, prod1)",
        ),
        (
            '[notify.channels.cmd]\ntype = "command"\ncommand = "page me"\n',
            3,
            "notify.channels.cmd.command: must be a list, not a string",
        ),
    ],
)
def test_a_bad_notify_setting_is_one_line_naming_its_file_and_line(
    tmp_path: Path, text: str, line: int, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line + BASE.count(chr(10))}: "), message
    assert expected in message, message
    for secret in ("hunter2", "abcdefgh", "secretpath"):
        assert secret not in message


def test_the_example_configs_notify_block_reads_once_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).parents[3] / "config" / "example.toml").read_text()
    start = example.index("# [notify]\n")
    lines = []
    for line in example[start:].splitlines():
        if not line.startswith("#"):
            break
        if re.match(r"^# (\[|[a-z_]+ = )", line):
            lines.append(line[2:])
    prod2 = '[[clusters]]\nname = "prod2"\nregion = "eu-west-1"\n\n'
    notify = load_config(write(tmp_path, prod2 + "\n".join(lines) + "\n")).notify
    assert set(notify.channels) == {"ops-chat", "oncall", "pager"}
    assert notify.channels_for("failed", "prod1") == ["oncall", "pager", "ops-chat"]
