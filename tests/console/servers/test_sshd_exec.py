"""SSH exec requests: allowed console subcommands run as the key's user (argv, never a shell);
everything else is refused in one line with exit status 2."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from console.config import load_config
from console.servers.sshd import SshServer, authorized_keys, load_host_key
from console.servers.sshd_exec import EXEC_COMMANDS, ExecRefused, exec_argv
from screens.cli.commands import has_command
from screens.cli.session_fork import ForkedConsoles
from tests.console.servers.processes import alive
from tests.console.servers.test_sshd import DEADLINE, _connect
from tests.console.servers.test_sshd import keys as keys  # fixtures
from tests.console.servers.test_sshd import sshd_config_path as sshd_config_path
from tests.waiting import await_until


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("deploy checkout-api prod1 5.2.3 --yes --json", None),
        ("check 'checkout-api' staging", ["check", "checkout-api", "staging"]),
        # Shell words are only words: nothing here is run by a shell.
        ("status ; id", ["status", ";", "id"]),
        ("history $(id) `id` && id | cat > /tmp/x", None),
        ("queue --json", None),
        ("lock list", None),
        ("wait d-1 --timeout 30 --json", None),
    ],
)
def test_allowed_subcommands_are_argv(command: str, argv: list[str] | None) -> None:
    assert exec_argv(command) == (argv if argv is not None else shlex.split(command))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "an empty command"),
        ("id", "'id' is not a command over SSH: run one of deploy, rollback,"),
        ("status;id", "'status;id' is not a command over SSH"),
        ("sh -c 'deploy x'", "'sh' is not a command over SSH"),
        ("/bin/sh", "'/bin/sh' is not a command"),
        ("config check", "'config' is not a command"),
        ("sshd --port 2223", "'sshd' is not a command"),
        ("runner", "'runner' is not a command"),
        ("demo", "'demo' is not a command"),
        ("freeze prod1 --reason x", "'freeze' is not a command"),
        ("scp -t /tmp", "'scp' is not a command"),
        ("queue cancel d-1", "'queue cancel' is not a command over SSH"),
        ("lock add --reason x", "'lock add' is not a command over SSH"),
        ("deploy a b c --config /tmp/mine.toml", "--config is the server's to set"),
        ("deploy a b c --conf=/tmp/mine.toml", "--conf is the server's to set"),
        ("status --store /tmp/s.db", "--store is the server's to set"),
        ("history --st /tmp/s.db", "--st is the server's to set"),
        ("deploy 'a b", "cannot read the command: no closing quotation"),
        ("status " + "x" * 5000, "longer than 4096 characters"),
    ],
)
def test_other_commands_are_refused_in_one_line(command: str, message: str) -> None:
    with pytest.raises(ExecRefused) as refused:
        exec_argv(command)
    assert message in refused.value.message and "\n" not in refused.value.message


def test_the_allow_list_names_commands_of_the_command_line() -> None:
    # approve and reject come with issue 14's approvals; every other entry exists today.
    missing = [name for name in EXEC_COMMANDS if not has_command(name)]
    assert set(missing) <= {"approve", "reject"}, missing


@pytest.fixture
async def forked(sshd_config_path: Path, tmp_path: Path) -> AsyncIterator[SshServer]:
    """A server that runs commands as `deploy-console sshd` does (forked, the actor handed in
    memory), its console a probe that reports who it acts for."""
    config = load_config(sshd_config_path)
    spawner = ForkedConsoles(["--config", "the-servers.toml"], entry="tests.session_probe:command")
    await spawner.start()
    server = SshServer(
        load_host_key(tmp_path / "data"),
        authorized_keys(config.sshd, config.source),
        ["unused"],
        spawner=spawner,
        commands=True,
    )
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()
    assert not server.sessions


async def test_a_command_runs_forked_as_the_keys_user_with_its_status_and_streams(
    forked: SshServer, keys: dict[str, Path]
) -> None:
    fingerprint = asyncssh.read_public_key(f"{keys['alice']}.pub").get_fingerprint("sha256")
    async with _connect(forked, keys["alice"]) as conn:
        port = conn.get_extra_info("sockname")[1]
        who = f"alice (ssh {fingerprint} from 127.0.0.1:{port})/storefront-team,oncall"
        # What the client sends in its environment names nobody.
        env = {"DEPLOY_CONSOLE_USER": "root", "USER": "root"}
        done = await asyncio.wait_for(
            conn.run("deploy checkout-api 'prod 1' 5.2.3; id", env=env, input="yes\n"), DEADLINE
        )
        argv = ["--config", "the-servers.toml", "deploy", "checkout-api", "prod 1", "5.2.3;", "id"]
        assert done.stdout == f"{who} {argv} False False\n"
        assert done.stderr == "on stderr\n"
        assert done.exit_status == 7
        # On a terminal (ssh -t), the same command, its output on the pty.
        process = await conn.create_process(
            "status", term_type="xterm", term_size=(80, 24), encoding=None
        )
        output = await asyncio.wait_for(process.stdout.read(), DEADLINE)
        assert (await asyncio.wait_for(process.wait(), DEADLINE)).exit_status == 7
        assert b"'status'] True True" in output and b"on stderr" in output


async def test_everything_else_is_refused_with_a_line_on_stderr_and_status_2(
    forked: SshServer, keys: dict[str, Path]
) -> None:
    async with _connect(forked, keys["bob"]) as conn:
        for command, said in [
            ("id", "'id' is not a command over SSH"),
            ("config check", "'config' is not a command over SSH"),
            ("sshd", "'sshd' is not a command over SSH"),
            ("runner", "'runner' is not a command over SSH"),
            ("demo", "'demo' is not a command over SSH"),
            ("bash -i", "'bash' is not a command over SSH"),
            ("deploy a b c --config=/tmp/x", "--config is the server's to set"),
        ]:
            done = await asyncio.wait_for(conn.run(command), DEADLINE)
            assert (done.exit_status, done.stdout) == (2, ""), command
            assert done.stderr.startswith(f"deploy-console: {said}"), done.stderr
            assert done.stderr.count("\n") == 1, done.stderr
        shell = await asyncio.wait_for(conn.run(), DEADLINE)  # a shell, without a terminal
        assert shell.exit_status == 2 and "a terminal is required" in str(shell.stderr)
        sftp = await asyncio.wait_for(conn.run(subsystem="sftp"), DEADLINE)
        assert sftp.exit_status == 2
        assert sftp.stderr == "deploy-console: subsystem 'sftp' is refused (no sftp, no scp)\r\n"
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", forked.port)  # ssh -L
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 9)  # ssh -R


# A command that says it is ready, notes a hangup in its file and goes on for a moment, then
# ends by itself (as `deploy` does: a closed connection is not the end of a deploy).
HANGUP_PROBE = (
    "import os, signal, sys, time\n"
    "note = sys.argv[-1]\n"
    "def hung_up(*_):\n"
    "    with open(note, 'a') as out: out.write('hung up\\n')\n"
    "signal.signal(signal.SIGHUP, hung_up)\n"
    "print('ready', os.getpid(), flush=True)\n"
    "while 'hung up' not in open(note).read(): time.sleep(0.05)\n"
    "for _ in range(20): print('x' * 4000, flush=True)\n"  # to nobody: never stuck on a pipe
    "with open(note, 'a') as out: out.write('ended\\n')\n"
)


async def test_a_command_whose_client_vanished_is_hung_up_and_ends_by_itself(
    sshd_config_path: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    config = load_config(sshd_config_path)
    note = tmp_path / "note"
    note.write_text("")
    server = SshServer(
        load_host_key(tmp_path / "data"),
        authorized_keys(config.sshd, config.source),
        [sys.executable, "-c", HANGUP_PROBE],
        settings=config.sshd,
        commands=True,
    )
    await server.start("127.0.0.1", 0)
    try:
        conn = await _connect(server, keys["alice"])
        process = await conn.create_process(f"wait {shlex.quote(str(note))}", encoding=None)
        line = await asyncio.wait_for(process.stdout.readline(), DEADLINE)
        pid = int(line.split()[1])
        conn.abort()  # the CI job was cancelled, its runner lost
        await await_until(lambda: "ended" in note.read_text(), "the command to end", DEADLINE)
        assert note.read_text() == "hung up\nended\n"
        await await_until(lambda: not alive(pid) and not server.sessions, "its reaping", DEADLINE)
    finally:
        await server.close()


# A command that, asked to stop, takes longer than a console's grace to end (as a deploy
# rolling back does) and notes that it ended by itself.
STOP_PROBE = (
    "import signal, sys, time\n"
    "note = sys.argv[-1]\n"
    "def stop(*_):\n"
    "    time.sleep(3)\n"
    "    open(note, 'a').write('rolled back\\n')\n"
    "    sys.exit(1)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


async def test_a_stopping_server_gives_a_command_time_to_roll_back(
    sshd_config_path: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    config = load_config(sshd_config_path)
    note = tmp_path / "note"
    note.write_text("")
    server = SshServer(
        load_host_key(tmp_path / "data"),
        authorized_keys(config.sshd, config.source),
        [sys.executable, "-c", STOP_PROBE],
        settings=config.sshd,
        commands=True,
    )
    await server.start("127.0.0.1", 0)
    async with _connect(server, keys["alice"]) as conn:
        process = await conn.create_process(f"deploy {shlex.quote(str(note))}", encoding=None)
        await asyncio.wait_for(process.stdout.readline(), DEADLINE)
        await asyncio.wait_for(server.close(), DEADLINE)
        assert note.read_text() == "rolled back\n"  # not killed after a console's 2 s
        assert (await asyncio.wait_for(process.wait(), DEADLINE)).exit_status == 1
