"""The audit anchor: [audit] in the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import DEFAULT_ANCHOR_KEY, AuditSettings, load_config
from tests.conftest import DEMO_CONFIG, EXAMPLE_CONFIG
from tests.test_config import VALID, check

BUCKET = "deploy-console-audit"


# -- [audit] in the config -----------------------------------------------------------------


def test_demo_and_example_configs_anchor_the_audit_chain() -> None:
    demo = load_config(DEMO_CONFIG).audit
    assert (demo.anchor_bucket, demo.anchor_cluster) == (BUCKET, "prod1")
    example = load_config(EXAMPLE_CONFIG).audit
    assert example.anchor_bucket is not None
    assert example.anchor_key == DEFAULT_ANCHOR_KEY
    text = EXAMPLE_CONFIG.read_text()
    for field in ("[audit]", "anchor_bucket", "anchor_key", "anchor_cluster", "anchor_every"):
        assert field in text, field


def test_no_audit_table_anchors_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(VALID)
    assert load_config(path).audit == AuditSettings()
    path.write_text(VALID + '\n[audit]\nanchor_bucket = "b-1.x"\nanchor_cluster = "prod1"\n')
    assert load_config(path).audit == AuditSettings(
        anchor_bucket="b-1.x", anchor_cluster="prod1", anchor_every_seconds=300.0
    )


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('anchor_bucket = "b"', "audit.anchor_bucket: 'b' is not an S3 bucket name"),
        ('anchor_bucket = "Audit_Bucket"', "audit.anchor_bucket: 'Audit_Bucket' is not an S3"),
        ('anchor_bucket = "a..b"', "audit.anchor_bucket: 'a..b' is not an S3 bucket name"),
        ('anchor_bucket = "audit"', "audit.anchor_cluster: is required with anchor_bucket"),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod3"',
            "audit.anchor_cluster: unknown cluster 'prod3' (known: staging, prod1)",
        ),
        ('anchor_cluster = "prod1"', "audit.anchor_cluster: needs anchor_bucket"),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_key = "/x.json"',
            "audit.anchor_key: must be an S3 object key like",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_every_seconds = 0',
            "audit.anchor_every_seconds: must be at least 1, not 0",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_every_seconds = "5"',
            "audit.anchor_every_seconds: must be a number, not a string",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nbucket = "x"',
            "audit.bucket: unknown key",
        ),
        ("anchor_bucket = 3", "audit.anchor_bucket: must be a string, not an integer"),
    ],
)
def test_a_bad_audit_table_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, expected: str
) -> None:
    code, err = check(tmp_path, f"{VALID}\n[audit]\n{table}\n", capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert f"console.toml: {expected}" in err, err
