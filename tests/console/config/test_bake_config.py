"""The clusters' bake settings: read, defaulting to today's behaviour, refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import load_config
from console.config.bake import BakeSettings, format_span, parse_span
from console.errors import ConfigError

CLUSTER = """\
[[clusters]]
name = "prod1"
region = "us-east-1"
{bake}
"""


def config_with(tmp_path: Path, bake: str) -> Path:
    path = tmp_path / "bake.toml"
    path.write_text(CLUSTER.format(bake=bake))
    return path


def test_bake_settings_are_read_and_a_cluster_without_them_never_bakes(tmp_path: Path) -> None:
    text = (
        'bake = "10m"\nalarms = ["checkout-5xx", "web-*"]\nkeep_old = "2h"\n'
        "bake_max_5xx = 25\nbake_max_unhealthy = 1"
    )
    bake = load_config(config_with(tmp_path, text)).cluster("prod1").bake
    assert bake == BakeSettings(600, ("checkout-5xx", "web-*"), 7200, 25, 1)
    assert bake.keeps_old
    plain = load_config(config_with(tmp_path, "")).cluster("prod1").bake
    assert plain == BakeSettings() and plain.seconds == 0 and not plain.keeps_old
    # keep_old alone: no watching, the old instances are kept stopped for a rollback.
    kept = load_config(config_with(tmp_path, 'keep_old = "1d"')).cluster("prod1").bake
    assert (kept.seconds, kept.keep_old_seconds, kept.keeps_old) == (0, 86400, True)


@pytest.mark.parametrize(
    ("bake", "expected"),
    [
        ('bake = "10 minutes"', "clusters[0].bake: '10 minutes' is not a duration like"),
        ('bake = "2d"', "clusters[0].bake: '2d' is longer than 24h"),
        ("bake = 600", "clusters[0].bake: must be a string"),
        ('keep_old = "soon"', "clusters[0].keep_old: 'soon' is not a duration"),
        ('alarms = ["checkout-5xx"]', "clusters[0].alarms: is watched during the bake: set bake"),
        ("bake_max_5xx = 3", "clusters[0].bake_max_5xx: is watched during the bake: set bake"),
        ('bake = "5m"\nbake_max_5xx = -1', "clusters[0].bake_max_5xx: must be at least 0"),
        ('bake = "5m"\nalarms = "checkout"', "clusters[0].alarms: must be a list"),
        ('bake = "5m"\nalarms = ["a", "a"]', "clusters[0].alarms: lists the same value twice"),
        ('bake = "5m"\nbake_max_500 = 3', "clusters[0].bake_max_500: unknown key"),
    ],
)
def test_a_bad_bake_setting_is_one_line_naming_its_file_and_line(
    tmp_path: Path, bake: str, expected: str
) -> None:
    path = config_with(tmp_path, bake)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "\n" not in message
    line = 4 + bake.count("\n")
    assert message.startswith((f"{path}:4: ", f"{path}:{line}: ")), message
    assert expected in message, message


def test_spans_read_and_said_the_same_way() -> None:
    assert [parse_span(t) for t in ("0", "90s", "10m", "2h", "1d", "10", "x", "1w")] == [
        0,
        90,
        600,
        7200,
        86400,
        10,
        None,
        None,
    ]
    assert [format_span(s) for s in (0, 45, 570, 600, 7200, 3900)] == [
        "0s",
        "45s",
        "9m30s",
        "10m",
        "2h",
        "1h05m",
    ]


def test_ending_or_rolling_back_a_bake_is_allowed_as_a_cancel(tmp_path: Path) -> None:
    """A deployer for their own deploy on an unprotected cluster; an admin otherwise."""
    from console.access import Access, AccessDenied, Action

    path = tmp_path / "access.toml"
    path.write_text(
        '[access]\ndeployers = ["dana"]\nadmins = ["ada"]\nviewers = ["victor"]\n\n'
        + CLUSTER.format(bake='bake = "10m"')
        + '\n[[clusters]]\nname = "staging"\nregion = "us-east-1"\nbake = "1m"\n'
    )
    access = Access(load_config(path), read_only=False)
    assert access.allows("dana", Action.BAKE, "staging", owner="dana")
    assert access.allows("ada", Action.BAKE, "staging", owner="dana")
    assert access.allows("ada", Action.BAKE, "prod1", owner="dana")
    assert not access.allows("victor", Action.BAKE, "staging", owner="victor")
    with pytest.raises(AccessDenied) as refused:
        access.check("dana", Action.BAKE, "staging", owner="erin")
    assert str(refused.value) == (
        "dana is a deployer in staging: may not end or roll back a bake (needs admin)"
    )
