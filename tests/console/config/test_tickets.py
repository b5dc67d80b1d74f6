"""The clusters' change ticket settings: parsed, refused in one line, and what they accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import TicketSettings, load_config
from console.errors import ConfigError

CLUSTER = """\
[[clusters]]
name = "prod1"
region = "us-east-1"
{ticket}
"""


def config_with(tmp_path: Path, ticket: str) -> Path:
    path = tmp_path / "tickets.toml"
    path.write_text(CLUSTER.format(ticket=ticket))
    return path


def test_a_ticket_setting_is_read_and_a_cluster_without_one_has_none(tmp_path: Path) -> None:
    path = config_with(tmp_path, 'ticket = { required = true, pattern = "^CHG-[0-9]+$" }')
    assert load_config(path).cluster("prod1").ticket == TicketSettings(True, "^CHG-[0-9]+$")
    assert load_config(config_with(tmp_path, "")).cluster("prod1").ticket is None


@pytest.mark.parametrize(
    ("ticket", "expected"),
    [
        ('ticket = { pattern = "^CHG-[0-9+$" }', "clusters[0].ticket.pattern: is not a regular"),
        ("ticket = { requried = true }", "clusters[0].ticket.requried: unknown key (did you mean"),
        ('ticket = { required = "yes" }', "clusters[0].ticket.required: must be a boolean"),
        ('ticket = "CHG"', "clusters[0].ticket: must be a table, not a string"),
    ],
)
def test_a_bad_ticket_setting_is_one_line_naming_its_file_and_line(
    tmp_path: Path, ticket: str, expected: str
) -> None:
    path = config_with(tmp_path, ticket)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:4: "), message
    assert expected in message, message


@pytest.mark.parametrize(
    ("settings", "ticket", "problem"),
    [
        (TicketSettings(required=True), None, "cluster prod1 needs a change ticket"),
        (TicketSettings(required=True), "", "cluster prod1 needs a change ticket"),
        (TicketSettings(required=False), None, None),
        (TicketSettings(pattern="^CHG-[0-9]+$"), "CHG-123", None),
        (
            TicketSettings(pattern="^CHG-[0-9]+$"),
            "chg-1",
            "ticket 'chg-1' does not match '^CHG-[0-9]+$' (cluster prod1)",
        ),
        (TicketSettings(), "CHG 1", "ticket must be 1-128 printable characters without spaces"),
        (TicketSettings(), "CHG-\x1b[2J", "ticket must be 1-128 printable characters"),
        (TicketSettings(), "X" * 129, "ticket must be 1-128 printable characters"),
    ],
)
def test_what_a_ticket_setting_accepts(
    settings: TicketSettings, ticket: str | None, problem: str | None
) -> None:
    found = settings.problem(ticket, "prod1")
    assert found == problem if problem is None else (found or "").startswith(problem)


def test_the_example_config_shows_the_setting() -> None:
    example = Path(__file__).resolve().parents[3] / "config" / "example.toml"
    assert '# ticket = { required = true, pattern = "^CHG-[0-9]+$" }' in example.read_text()
