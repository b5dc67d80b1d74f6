"""The SSH door's limits: terminal sizes clamped, bad terminal types refused, sessions and
logins in progress capped, slow logins dropped; through asyncssh and the real OpenSSH client."""

# The fixtures come from tests/console/servers/test_sshd.py: each test names one as a parameter.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest
import tomli_w

from console.config import read_toml
from console.identity import Actor
from console.servers.sshd_spawn import SessionProcess
from tests.console.servers.test_sshd import (  # noqa: F401 (fixtures)
    DEADLINE,
    Serve,
    _connect,
    _read_until,
    _ssh_argv,
    keys,
    needs_openssh,
    running_sshd,
    serve,
    sshd_config_path,
)
from tests.waiting import await_until

# Reports the terminal's size at start and after each resize; ends at the first line typed.
SHOW_SIZE = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGWINCH, lambda *_: os.write(1, "
    "f'resized {tuple(os.get_terminal_size(0))}\\n'.encode()))\n"  # print is not reentrant
    "print('size', tuple(os.get_terminal_size(0)), flush=True)\n"
    "sys.stdin.readline()\n"
)
WAIT_FOR_A_LINE = "import sys; print('ready', flush=True); sys.stdin.readline()"
TERM_REFUSAL = (
    "deploy-console: the terminal type (TERM) must be letters, digits and . _ + - "
    "(at most 64 characters)\r\n"
)


async def _until(condition: Callable[[], bool], what: str) -> None:
    await await_until(condition, what, DEADLINE)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_huge_terminal_sizes_are_clamped_and_leak_no_pty(
    serve: Serve, keys: dict[str, Path]
) -> None:
    server = await serve([sys.executable, "-c", SHOW_SIZE])
    before = _open_fds()
    # (asked at the pty request, what the console sees; a resize, what it sees then)
    cases = [
        ((70000, 70000, 70000, 70000), b"(1000, 500)", (65536, 65536), b"(1000, 500)"),
        ((2**32 - 1, 3, 0, 0), b"(1000, 3)", (2**32 - 1, 2**32 - 1), b"(1000, 500)"),
        ((0, 0, 0, 0), b"(80, 24)", (1, 1), b"(1, 1)"),
        ((100, 70000, 0, 0), b"(100, 500)", (120, 40), b"(120, 40)"),
        ((70000, 1, 0, 0), b"(1000, 1)", (0, 70000), b"(80, 500)"),
    ]
    for size, seen, resize, seen_after in cases:
        async with _connect(server, keys["alice"]) as conn:
            process = await conn.create_process(term_type="xterm", term_size=size, encoding=None)
            await _read_until(process.stdout, b"size " + seen + b"\r\n")
            process.change_terminal_size(*resize)
            await _read_until(process.stdout, b"resized " + seen_after + b"\r\n")
            process.stdin.write(b"\r")
            completed = await asyncio.wait_for(process.wait(), DEADLINE)
            assert completed.exit_status == 0
    # Every pty (both its ends) and every connection of the five sessions is closed again.
    await _until(lambda: not server.sessions and _open_fds() <= before, "the fds to be closed")


@pytest.mark.parametrize(
    "term",
    ["xterm\x1b]0;owned\x07", "xterm\x00", "xterm\r\nCOLORTERM=x", "xterm\n", "x" * 65, "-xterm"],
    ids=["osc-title", "nul", "crlf", "final-newline", "too-long", "leading-dash"],
)
async def test_a_terminal_type_that_is_not_a_terminfo_name_is_refused_in_one_line(
    serve: Serve, keys: dict[str, Path], term: str
) -> None:
    server = await serve([sys.executable, "-c", "print('console ran')"])
    async with _connect(server, keys["alice"]) as conn:
        refused = await asyncio.wait_for(
            conn.run(term_type=term, term_size=(80, 24), encoding=None), DEADLINE
        )
    assert refused.exit_status == 2
    assert refused.stdout == b""  # no console, no traceback, no echo of the escape sequences
    assert refused.stderr == TERM_REFUSAL.encode()
    assert not server.sessions


async def test_sessions_are_capped_per_user_and_in_total(
    serve: Serve, keys: dict[str, Path]
) -> None:
    server = await serve(
        [sys.executable, "-c", WAIT_FOR_A_LINE], max_sessions_per_user=2, max_sessions=3
    )
    async with (
        _connect(server, keys["alice"]) as alice,
        _connect(server, keys["bob"]) as bob,
    ):

        async def session(conn: asyncssh.SSHClientConnection) -> asyncssh.SSHClientProcess[bytes]:
            process = await conn.create_process(term_type="xterm", encoding=None)
            await _read_until(process.stdout, b"ready")
            return process

        async def refused(conn: asyncssh.SSHClientConnection) -> bytes:
            completed = await asyncio.wait_for(conn.run(term_type="xterm", encoding=None), DEADLINE)
            assert completed.exit_status == 2 and completed.stdout == b""
            return bytes(completed.stderr or b"")

        first = await session(alice)
        await session(alice)
        assert await refused(alice) == (
            b"deploy-console: alice already has 2 sessions (at most 2): end one first\r\n"
        )
        await session(bob)  # another user still gets in, up to the total
        assert await refused(bob) == (
            b"deploy-console: the server is full (3 sessions): try again later\r\n"
        )
        first.stdin.write(b"\r")  # alice ends one: she may start one again
        assert (await asyncio.wait_for(first.wait(), DEADLINE)).exit_status == 0
        await _until(lambda: len(server.sessions) == 2, "alice's first session to end")
        await session(alice)
        assert len(server.sessions) == 3


async def test_logins_in_progress_are_capped_and_dropped_after_the_grace_time(
    serve: Serve, keys: dict[str, Path]
) -> None:
    grace = 1.0
    server = await serve(["/bin/true"], max_startups=1, login_grace_seconds=grace)
    started = time.monotonic()  # before the server's login timer starts
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"SSH-2.0-silent\r\n")  # then nothing: no key exchange, no login
    banner = await asyncio.wait_for(reader.readuntil(b"\r\n"), DEADLINE)
    assert banner.startswith(b"SSH-2.0-")  # the server has taken the silent client in
    # The one slot for a login in progress is taken: the next client is turned away, told why.
    with pytest.raises(asyncssh.DisconnectError) as turned_away:
        async with _connect(server, keys["alice"]):
            pass
    assert turned_away.value.code == asyncssh.DISC_TOO_MANY_CONNECTIONS
    assert turned_away.value.reason.startswith(  # asyncssh appends " (error 12)"
        "too many connections are logging in at once: try again later"
    )
    while await asyncio.wait_for(reader.read(65536), DEADLINE):
        pass  # the server's banner and key exchange offer, then EOF when it hangs up
    assert time.monotonic() - started >= grace
    writer.close()
    await _until(lambda: not server.logging_in, "the slot to be free")
    async with _connect(server, keys["alice"]) as conn:  # a login that completes gets in
        assert not server.logging_in
        completed = await asyncio.wait_for(conn.run(term_type="xterm"), DEADLINE)
        assert completed.exit_status == 0


class _BrokenSpawner:
    """A spawner that fails the way a bug would (not an OSError)."""

    async def spawn(self, terminal: int, env: dict[str, str], actor: Actor) -> SessionProcess:
        raise RuntimeError("Set changed size during iteration")


async def test_a_console_that_fails_to_start_ends_the_session_with_one_line(
    serve: Serve, keys: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve()
    server.spawner = _BrokenSpawner()
    async with _connect(server, keys["alice"]) as conn:
        failed = await asyncio.wait_for(conn.run(term_type="xterm", encoding=None), DEADLINE)
    assert failed.exit_status == 1 and failed.stdout == b""
    assert failed.stderr == b"deploy-console: the session failed (RuntimeError)\r\n"
    assert "Set changed size" in caplog.text  # the operator's log has the traceback
    assert not server.sessions


# -- the real OpenSSH client, through `deploy-console sshd` ----------------------------------


@pytest.fixture
def capped_sshd(sshd_config_path: Path, tmp_path: Path) -> Iterator[int]:
    """`deploy-console sshd` with one session per user, as its own process: its port."""
    data = read_toml(sshd_config_path)
    data["sshd"]["max_sessions_per_user"] = 1
    config = tmp_path / "config.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    with running_sshd(config, tmp_path) as (port, _fingerprint):
        yield port


def _ssh(port: int, key: Path, tmp_path: Path, term: str) -> subprocess.CompletedProcess[str]:
    argv = _ssh_argv(port, key, tmp_path / "known_hosts")
    return subprocess.run(
        [*argv[:-1], "-tt", argv[-1]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=dict(os.environ, TERM=term),
    )


@needs_openssh
async def test_openssh_gets_one_line_for_a_bad_term_and_for_a_session_over_the_cap(
    capped_sshd: int, keys: dict[str, Path], tmp_path: Path
) -> None:
    port = capped_sshd
    # OpenSSH sends its TERM as the pty's terminal type, escape sequences and all.
    bad_term = await asyncio.to_thread(_ssh, port, keys["alice"], tmp_path, "xterm\x1b]0;owned\x07")
    assert bad_term.returncode == 2, bad_term
    assert TERM_REFUSAL.strip() in bad_term.stderr.splitlines(), bad_term.stderr
    assert "Traceback" not in bad_term.stdout + bad_term.stderr and "owned" not in bad_term.stderr
    # alice's one session (the console itself); her second, through OpenSSH, is refused.
    known = asyncssh.import_known_hosts((tmp_path / "known_hosts").read_text())
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        username="alice",
        client_keys=[str(keys["alice"])],
        known_hosts=known,
        agent_path=None,
    ) as conn:
        console = await conn.create_process(
            term_type="xterm-256color", term_size=(160, 45), encoding=None
        )
        await _read_until(console.stdout, b"9 projects")
        second = await asyncio.to_thread(_ssh, port, keys["alice"], tmp_path, "xterm-256color")
        assert second.returncode == 2, second
        assert (
            "deploy-console: alice already has 1 session (at most 1): end one first"
            in second.stderr.splitlines()
        ), second.stderr
        console.stdin.write(b"\x11")  # ctrl+q: the first session still ends normally
        assert (await asyncio.wait_for(console.wait(), DEADLINE)).exit_status == 0
