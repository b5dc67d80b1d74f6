"""SSH to instances through the world's jump host: commands, streams, host keys, timeouts."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from console.config import SshSettings
from console.errors import HostKeyError, SshError
from console.ssh.client import JumpHosts, open_host
from console.world.ssh import WorldSsh
from tests.conftest import SSH_BROKEN_INSTANCE, SSH_INSTANCES
from tests.waiting import await_until

ADDRESS = "10.20.0.1"
INSTANCE = SSH_INSTANCES[ADDRESS]
BROKEN_ADDRESS = next(a for a, i in SSH_INSTANCES.items() if i == SSH_BROKEN_INSTANCE)


class Lines:
    """An on_line callback that keeps what it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.seen.append((stream, line))

    def of(self, stream: str) -> list[str]:
        return [line for s, line in self.seen if s == stream]


def _known_hosts_without_ca(world_ssh: WorldSsh, tmp_path: Path, extra: str = "") -> Path:
    lines = world_ssh.known_hosts_path.read_text().splitlines()
    path = tmp_path / "known_hosts-no-ca"
    path.write_text("".join(f"{line}\n" for line in lines if "@cert-authority" not in line) + extra)
    return path


async def test_run_streams_lines_and_returns_the_exit_status(ssh_settings: SshSettings) -> None:
    lines = Lines()
    async with open_host(ssh_settings, ADDRESS) as host:
        status = await host.run(
            "echo one; echo oops >&2; printf 'two\\nthree'; exit 3", on_line=lines
        )
    assert status == 3
    assert lines.of("stdout") == ["one", "two", "three"]
    assert lines.of("stderr") == ["oops"]


async def test_commands_run_in_the_sandbox_with_the_instance_environment(
    world_ssh: WorldSsh, ssh_settings: SshSettings
) -> None:
    lines = Lines()
    async with open_host(ssh_settings, ADDRESS) as host:
        await host.run('pwd; echo "$HOME $INSTANCE_ID $RELEASE_VERSION"', on_line=lines)
    sandbox = world_ssh.sandbox(INSTANCE)
    assert lines.of("stdout") == [str(sandbox), f"{sandbox} {INSTANCE} 2.0.0"]
    assert (sandbox / "app" / "VERSION").read_text().strip() == "2.0.0"


async def test_stdin_reaches_the_command_and_is_never_logged(
    world_ssh: WorldSsh, ssh_settings: SshSettings, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "DB_PASSWORD=hunter2-s3cret\n"
    caplog.set_level(logging.DEBUG)
    async with open_host(ssh_settings, ADDRESS) as host:
        assert await host.run("umask 077; cat > app.env", stdin=secret) == 0
        with pytest.raises(SshError) as raised:
            await host.run("sleep 30", stdin=secret, timeout=0.2)
    assert (world_ssh.sandbox(INSTANCE) / "app.env").read_text() == secret
    assert "hunter2" not in str(raised.value)
    assert "hunter2" not in caplog.text


async def test_one_connection_serves_several_commands_also_at_once(
    ssh_settings: SshSettings,
) -> None:
    async with open_host(ssh_settings, ADDRESS) as host:
        assert await host.run("true") == 0
        assert await host.run("false") == 1
        statuses = await asyncio.gather(*(host.run(f"exit {n}") for n in range(5)))
    assert statuses == [0, 1, 2, 3, 4]


async def test_a_command_killed_by_a_signal_reports_128_plus_the_signal(
    ssh_settings: SshSettings,
) -> None:
    async with open_host(ssh_settings, ADDRESS) as host:
        assert await host.run("kill -9 $$") == 137


async def test_a_timeout_names_the_host_and_kills_the_command(
    world_ssh: WorldSsh, ssh_settings: SshSettings
) -> None:
    pid_file = world_ssh.sandbox(INSTANCE) / "pid"
    async with open_host(ssh_settings, ADDRESS) as host:
        started = time.perf_counter()
        with pytest.raises(SshError) as raised:
            await host.run("echo $$ > pid; exec sleep 30", timeout=0.5)
        assert time.perf_counter() - started < 5
        assert str(raised.value) == f"command timed out after 0.5s on {ADDRESS}"
        pid = int(pid_file.read_text())
        await await_until(lambda: not _alive(pid), f"the timed-out command (pid {pid}) to end", 5)
        assert await host.run("true") == 0  # the connection survives a timed-out command


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_known_hosts_without_the_ca_refuses_the_instance_before_anything_runs(
    world_ssh: WorldSsh, ssh_settings: SshSettings, tmp_path: Path
) -> None:
    sandbox = world_ssh.sandbox(INSTANCE)
    settings = dataclasses.replace(
        ssh_settings, known_hosts=_known_hosts_without_ca(world_ssh, tmp_path)
    )
    with pytest.raises(HostKeyError) as raised:
        async with open_host(settings, ADDRESS) as host:
            await host.run("touch side-effect")
    assert ADDRESS in str(raised.value) and "\n" not in str(raised.value)
    assert not (sandbox / "side-effect").exists()


async def test_a_certificate_from_another_ca_is_refused(
    world_ssh: WorldSsh, ssh_settings: SshSettings, tmp_path: Path
) -> None:
    other_ca = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = _known_hosts_without_ca(world_ssh, tmp_path, f"@cert-authority * {other_ca}")
    settings = dataclasses.replace(ssh_settings, known_hosts=known_hosts)
    with pytest.raises(HostKeyError, match=re.escape(ADDRESS)):
        async with open_host(settings, ADDRESS):
            pass


async def test_a_jump_host_with_an_unknown_key_is_refused(
    world_ssh: WorldSsh, ssh_settings: SshSettings, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts-ca-only"
    ca_line = world_ssh.known_hosts_path.read_text().splitlines()[0]
    assert ca_line.startswith("@cert-authority")
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts.write_text(f"[127.0.0.1]:{world_ssh.port} {other}")
    settings = dataclasses.replace(ssh_settings, known_hosts=known_hosts)
    with pytest.raises(HostKeyError, match=r"jump host 127\.0\.0\.1"):
        async with open_host(settings, ADDRESS):
            pass


async def test_a_missing_known_hosts_file_is_a_host_key_error(
    ssh_settings: SshSettings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(ssh_settings, known_hosts=tmp_path / "nope")
    with pytest.raises(HostKeyError, match="known_hosts"):
        async with open_host(settings, ADDRESS):
            pass


async def test_a_key_the_jump_host_does_not_know_is_refused(
    ssh_settings: SshSettings, tmp_path: Path
) -> None:
    key = tmp_path / "stranger"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    settings = dataclasses.replace(ssh_settings, key=key)
    with pytest.raises(SshError) as raised:
        async with open_host(settings, ADDRESS):
            pass
    assert not isinstance(raised.value, HostKeyError)
    assert "refused" in str(raised.value)


async def test_an_unreadable_key_is_one_line(ssh_settings: SshSettings, tmp_path: Path) -> None:
    key = tmp_path / "garbage"
    key.write_text("not a key\n")
    with pytest.raises(SshError, match=re.escape(f"cannot use SSH key {key}")):
        async with open_host(dataclasses.replace(ssh_settings, key=key), ADDRESS):
            pass


@pytest.mark.parametrize(("address", "port"), [("10.99.0.1", 22), (ADDRESS, 2222)])
async def test_an_unknown_address_or_port_is_refused_by_the_jump_host(
    ssh_settings: SshSettings, address: str, port: int
) -> None:
    settings = dataclasses.replace(ssh_settings, port=port)
    with pytest.raises(SshError) as raised:
        async with open_host(settings, address):
            pass
    message = str(raised.value)
    assert f"{address}:{port}" in message and "jump host" in message and "\n" not in message


async def test_a_jump_host_that_is_down_is_one_line(ssh_settings: SshSettings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    settings = dataclasses.replace(ssh_settings, jump_host=f"127.0.0.1:{free_port}")
    with pytest.raises(
        SshError, match=re.escape(f"cannot connect to jump host 127.0.0.1:{free_port}")
    ):
        async with open_host(settings, ADDRESS):
            pass


async def test_the_console_never_dials_an_instance_address(
    ssh_settings: SshSettings, dialled: list[Any]
) -> None:
    """Only the jump host on loopback: the jump host serves the instances in-process."""
    for address in list(SSH_INSTANCES)[:3]:
        async with open_host(ssh_settings, address) as host:
            assert await host.run("true") == 0
    assert len(dialled) == 3
    assert {address[0] for address in dialled} == {"127.0.0.1"}


async def test_a_shared_jump_connection_is_dialled_once(
    ssh_settings: SshSettings, dialled: list[Any]
) -> None:
    async def instance_id(jumps: JumpHosts, address: str) -> str:
        lines = Lines()
        async with open_host(ssh_settings, address, jumps=jumps) as host:
            await host.run("echo $INSTANCE_ID", on_line=lines)
        return lines.of("stdout")[0]

    addresses = list(SSH_INSTANCES)[:5]
    async with JumpHosts() as jumps:
        found = await asyncio.gather(*(instance_id(jumps, a) for a in addresses))
    assert found == [SSH_INSTANCES[a] for a in addresses]
    assert len(dialled) == 1


async def test_twenty_hosts_in_parallel(
    ssh_settings: SshSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    async def instance_id(address: str) -> str:
        lines = Lines()
        async with open_host(ssh_settings, address) as host:
            assert await host.run("echo $INSTANCE_ID", on_line=lines, timeout=30) == 0
        return lines.of("stdout")[0]

    addresses = list(SSH_INSTANCES)[:20]
    started = time.perf_counter()
    found = await asyncio.wait_for(asyncio.gather(*(instance_id(a) for a in addresses)), 60)
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n20 hosts in parallel (connect + run): {seconds:.2f}s")
    assert found == [SSH_INSTANCES[a] for a in addresses]


async def test_the_release_scripts_and_is_serving(
    world_ssh: WorldSsh, ssh_settings: SshSettings
) -> None:
    assert world_ssh.is_serving(INSTANCE) is None  # no sandbox yet: the world's own rules
    assert world_ssh.is_serving(INSTANCE, "/health") is None  # a path its release serves
    assert world_ssh.is_serving(INSTANCE, "/ready") is False  # one it does not
    lines = Lines()
    async with open_host(ssh_settings, ADDRESS) as host:
        assert await host.run("app/bin/healthcheck", on_line=lines) == 1
        assert world_ssh.is_serving(INSTANCE) is False
        assert await host.run("app/bin/configure && app/bin/migrate", on_line=lines) == 0
        assert await host.run("app/bin/start", on_line=lines) == 0
        assert world_ssh.is_serving(INSTANCE) is False  # no env file yet
        assert await host.run("cat > app.env", stdin="A=1\n") == 0
        assert world_ssh.is_serving(INSTANCE) is True
        # A load balancer's check passes on a path the release routes (app/routes) only.
        assert world_ssh.is_serving(INSTANCE, "/health") is True
        assert world_ssh.is_serving(INSTANCE, "/ready") is False
        assert await host.run("echo /ready >> app/routes") == 0
        assert world_ssh.is_serving(INSTANCE, "/ready") is True
        assert await host.run("app/bin/healthcheck", on_line=lines) == 0
        assert await host.run("cd /tmp && $HOME/app/bin/stop", on_line=lines) == 0
        assert world_ssh.is_serving(INSTANCE) is False
    sandbox = world_ssh.sandbox(INSTANCE)
    assert "2.0.0" in (sandbox / "run" / "migrations.log").read_text()
    assert "configured" in lines.of("stdout")
    assert "storefront 2.0.0 started" in lines.of("stdout")


async def test_a_broken_release_fails_its_health_check(
    world_ssh: WorldSsh, ssh_settings: SshSettings
) -> None:
    lines = Lines()
    async with open_host(ssh_settings, BROKEN_ADDRESS) as host:
        await host.run("app/bin/start && touch app.env")
        assert await host.run("app/bin/healthcheck", on_line=lines) == 1
    assert lines.of("stderr") == ["health: GET /status returned 503"]
    assert world_ssh.is_serving(SSH_BROKEN_INSTANCE) is False


def test_asyncssh_does_not_log_at_info() -> None:
    assert logging.getLogger("asyncssh").getEffectiveLevel() >= logging.WARNING
