"""A probe against real parts: a loopback HTTP server (2xx, 4xx, no answer in time, values
URL-quoted) and real commands (exit codes, a timeout that kills, nothing of ours leaks)."""

from __future__ import annotations

import sys
import time

import pytest

from console.config.gates import ProbeSettings
from console.gates.probe import probe
from tests.console.gates.receiver import receiver

VALUES = {
    "project": "storefront",
    "cluster": "prod2",
    "release": "2.15.0",
    "image_id": "ami-123",
    "ticket": "CHG 1/2&x=y",
    "config": "/etc/deploy-console/config.toml",
}


async def test_a_2xx_answer_passes_and_its_first_line_is_the_answer() -> None:
    async with receiver(body="\n  change CHG-1 approved by carol\nsecond line\n") as server:
        template = "/changes/{ticket}?ticket={ticket}&cluster={cluster}"
        settings = ProbeSettings(url=server.url + template)
        answer = await probe(settings, VALUES)
    assert answer.passed
    assert answer.text == "HTTP 200: change CHG-1 approved by carol"
    # Every value is URL-quoted: a ticket cannot add a query parameter or a path.
    assert server.seen == ["/changes/CHG%201%2F2%26x%3Dy?ticket=CHG%201%2F2%26x%3Dy&cluster=prod2"]


async def test_a_4xx_answer_refuses_with_its_status_and_first_line() -> None:
    async with receiver(status=404, body="no such change\n") as server:
        answer = await probe(ProbeSettings(url=server.url + "/{ticket}"), VALUES)
    assert not answer.passed
    assert answer.text == "HTTP 404: no such change"


async def test_no_answer_in_time_refuses_within_the_timeout() -> None:
    async with receiver(delay=30) as server:
        started = time.monotonic()
        answer = await probe(ProbeSettings(url=server.url + "/", timeout=0.5), VALUES)
    assert time.monotonic() - started < 10
    assert not answer.passed
    assert answer.text == "no answer from 127.0.0.1 within 0.5 s"


async def test_a_closed_port_refuses_in_one_line() -> None:
    async with receiver() as server:
        url = server.url
    answer = await probe(ProbeSettings(url=url + "/", timeout=5), VALUES)
    assert not answer.passed
    assert answer.text.startswith("cannot reach 127.0.0.1: ")


async def test_an_answer_is_masked_and_its_escape_sequences_made_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", "s3cr3t-tracker-token")
    body = "ok \x1b]52;c;aGk=\x07 token=s3cr3t-tracker-token\n"
    async with receiver(body=body) as server:
        answer = await probe(ProbeSettings(url=server.url + "/"), VALUES)
    assert "s3cr3t" not in answer.text
    assert "\x1b" not in answer.text and "\x07" not in answer.text
    assert answer.text == "HTTP 200: ok \\x1b]52;c;aGk=\\x07 token=********"


async def test_a_command_passes_on_exit_0_with_the_values_as_arguments() -> None:
    script = "import sys; print('build', *sys.argv[1:], 'passed')"
    settings = ProbeSettings(command=(sys.executable, "-c", script, "{project}", "{release}"))
    answer = await probe(settings, VALUES)
    assert answer.passed
    assert answer.text == "exit 0: build storefront 2.15.0 passed"


async def test_a_command_that_fails_refuses_with_its_exit_code_and_first_line() -> None:
    script = "import sys; print('build failed: tests red'); sys.exit(3)"
    answer = await probe(ProbeSettings(command=(sys.executable, "-c", script)), VALUES)
    assert not answer.passed
    assert answer.text == "exit 3: build failed: tests red"


async def test_a_command_past_its_timeout_is_killed() -> None:
    script = "import time; print('thinking', flush=True); time.sleep(60)"
    started = time.monotonic()
    answer = await probe(ProbeSettings(command=(sys.executable, "-c", script), timeout=0.5), VALUES)
    assert time.monotonic() - started < 10
    assert not answer.passed
    assert answer.text == "timed out after 0.5 s (killed): thinking"


async def test_a_program_that_is_not_there_refuses_in_one_line() -> None:
    answer = await probe(ProbeSettings(command=("/nonexistent/gate",)), VALUES)
    assert not answer.passed
    assert answer.text.startswith("cannot run '/nonexistent/gate': ")
