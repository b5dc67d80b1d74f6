"""Retries follow the user's AWS settings (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, the profile's
retry_mode / max_attempts), within the deadline of a wait; `config check` says, per cluster,
where its credentials and retry settings come from.

The failing endpoint is a real HTTP server on loopback that answers every call with a 500, the
way AWS answers when it has an internal error: a retryable error in every retry mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore.session
import pytest

from console.aws.credentials import credential_source
from console.aws.gateway import AwsGateway
from console.aws.retries import DEFAULT_RETRIES, retry_settings
from console.aws.waits import deadline
from console.config import ClusterConfig
from console.errors import AwsError
from screens.main import run

ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
    b"<Code>InternalError</Code><Message>We encountered an internal error.</Message>"
    b"</Error></Errors><RequestID>test</RequestID></Response>"
)


class FailingAws:
    """Counts the requests it answers, each with a 500."""

    def __init__(self) -> None:
        self.requests = 0
        failing = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                failing.requests += 1
                self.send_response(500)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(ERROR)))
                self.end_headers()
                self.wfile.write(ERROR)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def failing_aws() -> Iterator[FailingAws]:
    aws = FailingAws()
    thread = threading.Thread(target=aws.server.serve_forever, daemon=True)
    thread.start()
    yield aws
    aws.server.shutdown()
    aws.server.server_close()


@pytest.fixture
def aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS config and credentials file of the test's own, and no AWS setting from outside."""
    for name in (
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "aws-config").write_text(
        "[profile sso-admin]\nsso_session = corp\nsso_account_id = 123456789012\n"
        "sso_role_name = Deployer\n\n[sso-session corp]\nsso_start_url = https://corp.example\n"
        "sso_region = eu-west-1\n\n"
        "[profile deployer]\nrole_arn = arn:aws:iam::123456789012:role/deploy\n"
        "source_profile = keys\nretry_mode = adaptive\nmax_attempts = 7\n\n"
        "[profile keys]\nregion = eu-west-1\n"
    )
    (tmp_path / "aws-credentials").write_text(
        "[keys]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s3cr3t-never-shown\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return tmp_path


CLUSTER = '[[clusters]]\nname = "{name}"\nregion = "us-east-1"\n{extra}\n'


def _gateway(url: str, executor: ThreadPoolExecutor) -> AwsGateway:
    return AwsGateway(ClusterConfig("staging", "us-east-1", endpoint_url=url), executor)


async def test_the_environment_sets_the_attempts(
    failing_aws: FailingAws, aws_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ThreadPoolExecutor(2) as executor:
        assert _gateway(failing_aws.url, executor).retries == DEFAULT_RETRIES
        for attempts in (1, 2):
            monkeypatch.setenv("AWS_MAX_ATTEMPTS", str(attempts))
            gateway = _gateway(failing_aws.url, executor)
            assert gateway.retries.source == "AWS_MAX_ATTEMPTS"
            failing_aws.requests = 0
            with pytest.raises(AwsError, match="InternalError"):
                await gateway.describe_instances([])
            assert failing_aws.requests == attempts


async def test_a_wait_deadline_cuts_the_users_attempts_short(
    failing_aws: FailingAws, aws_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "40")  # with backoff: minutes
    with ThreadPoolExecutor(2) as executor:
        gateway = _gateway(failing_aws.url, executor)
        assert gateway.retries.attempts == 40
        began = time.monotonic()
        with pytest.raises(AwsError), deadline(began + 2.5):
            await gateway.target_health("arn:aws:elasticloadbalancing:tg/web")
        assert time.monotonic() - began < 3.5
        assert failing_aws.requests < 40


def test_a_profile_sets_mode_and_attempts_and_the_environment_wins(
    aws_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = botocore.session.Session(profile="deployer")
    settings = retry_settings(core)
    assert (settings.mode, settings.attempts, settings.source) == (
        "adaptive",
        7,
        "profile deployer",
    )
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    settings = retry_settings(botocore.session.Session(profile="deployer"))
    assert (settings.mode, settings.attempts) == ("adaptive", 3)
    assert settings.source == "profile deployer, AWS_MAX_ATTEMPTS"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AWS_MAX_ATTEMPTS", "many", "max_attempts (from AWS_MAX_ATTEMPTS) is not a whole number"),
        ("AWS_MAX_ATTEMPTS", "0", "max_attempts 0 (from AWS_MAX_ATTEMPTS) is not between 1"),
        ("AWS_RETRY_MODE", "eager", "retry_mode 'eager' (from AWS_RETRY_MODE) is not one of"),
    ],
)
def test_a_bad_retry_setting_is_one_line_with_exit_2(
    aws_files: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    config = aws_files / "console.toml"
    config.write_text(CLUSTER.format(name="staging", extra=""))
    monkeypatch.setenv(variable, value)
    assert run(["config", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"deploy-console: error: cluster staging: {message}")


def test_config_check_names_each_clusters_credential_source(
    aws_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = aws_files / "console.toml"
    config.write_text(
        CLUSTER.format(name="staging", extra='profile = "keys"\n')
        + CLUSTER.format(name="qaprod1", extra='profile = "sso-admin"\n')
        + CLUSTER.format(
            name="prod1",
            extra='profile = "deployer"\n'
            'role_arn = "arn:aws:iam::123456789012:role/console-read"\n'
            'mfa_serial = "arn:aws:iam::123456789012:mfa/ops"\n',
        )
        + CLUSTER.format(name="prod2", extra='endpoint_url = "http://127.0.0.1:9"\n')
    )
    assert run(["config", "check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if "credentials:" in line}
    assert "profile keys: static keys (shared credentials file)" in lines["staging"]
    assert "profile sso-admin: SSO (corp; `aws sso login` first)" in lines["qaprod1"]
    assert (
        "profile deployer: assume-role arn:aws:iam::123456789012:role/deploy from keys; "
        "then assumes arn:aws:iam::123456789012:role/console-read as the person "
        "(SourceIdentity) with MFA" in lines["prod1"]
    )
    assert "the embedded world's test keys" in lines["prod2"]
    assert "retries: adaptive, 7 attempts (profile deployer)" in out
    assert "retries: standard, 4 attempts (console default)" in out
    assert "AKIDEXAMPLE" not in out and "s3cr3t" not in out


def test_config_check_says_a_profile_this_host_lacks(
    aws_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = aws_files / "console.toml"
    config.write_text(CLUSTER.format(name="prod1", extra='profile = "nobody"\n'))
    assert run(["config", "check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "credentials: profile nobody: not in this host's AWS config (calls fail here)" in out


def test_the_default_chain_is_named_without_resolving_it(
    aws_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = ClusterConfig("staging", "us-east-1")
    assert credential_source(cluster).source.startswith("instance role (EC2 instance metadata)")
    monkeypatch.setenv("AWS_PROFILE", "keys")
    assert credential_source(cluster).source == (
        "profile keys (AWS_PROFILE): static keys (shared credentials file)"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    assert credential_source(cluster).source == "environment keys (AWS_ACCESS_KEY_ID)"
