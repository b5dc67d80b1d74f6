"""The console's SSH server: public keys only, one console per session on a pty, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import select
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import tomli_w

from console.config import load_config, parse_config, read_toml
from console.errors import ConfigError
from console.servers.sshd import SshServer, authorized_keys, load_host_key, read_authorized_keys
from screens.cli.session_fork import ForkedConsoles
from screens.cli.sshd import console_command
from screens.main import has_command, run
from tests.conftest import ROOT, run_python
from tests.console.servers.processes import alive
from tests.waiting import await_until, wait_until

# A ceiling for what should take a second: the suite runs 3 workers on 2 cores beside other
# work, and a wait only reaches it when something is broken.
DEADLINE = 90.0
Serve = Callable[..., Awaitable[SshServer]]


async def _read_until(
    stream: asyncssh.SSHReader[bytes], needle: bytes, timeout: float = DEADLINE
) -> bytes:
    seen = b""

    async def read() -> bytes:
        nonlocal seen
        while needle not in seen:
            chunk = await stream.read(65536)
            if not chunk:
                raise AssertionError(f"EOF before {needle!r}; got {seen[-400:]!r}")
            seen += chunk
        return seen

    return await asyncio.wait_for(read(), timeout)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """alice's key (in the config), bob's (in an authorized_keys file) and a stranger's."""
    folder = tmp_path_factory.mktemp("sshd-keys")
    paths = {}
    for name in ("alice", "bob", "mallory"):
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{name}@test")
        path = folder / name
        path.write_bytes(key.export_private_key())
        path.chmod(0o600)
        key.write_public_key(f"{path}.pub")
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def sshd_config_path(
    world_config_path: Path, keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("sshd-config")
    bob = keys["bob"].with_suffix(".pub").read_text().strip()
    authorized = folder / "authorized_keys"
    authorized.write_text(
        f'# bob\nno-port-forwarding,environment="DEPLOY_CONSOLE_USER=bob" {bob}\n'
    )
    data = read_toml(world_config_path)
    data["sshd"] = {
        "keys": [
            {
                "user": "alice",
                "key": keys["alice"].with_suffix(".pub").read_text(),
                "groups": ["storefront-team", "oncall"],
            }
        ],
        "authorized_keys": str(authorized),
    }
    path = folder / "config.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


@pytest.fixture
async def serve(sshd_config_path: Path, tmp_path: Path) -> AsyncIterator[Serve]:
    """Starts an in-process server on a free port running `command` (default: the console)."""
    config = load_config(sshd_config_path)
    servers: list[SshServer] = []

    async def start(command: list[str] | None = None, **limits: Any) -> SshServer:
        """`limits`: [sshd] settings (max_sessions, login_grace_seconds...) for this server."""
        argv = command or console_command(config, str(tmp_path / "store.db"), kiosk=False)
        server = SshServer(
            load_host_key(tmp_path / "data"),
            authorized_keys(config.sshd, config.source),
            argv,
            settings=dataclasses.replace(config.sshd, **limits),
        )
        await server.start("127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def _connect(server: SshServer, key: Path | None, **options: Any) -> Any:
    known = asyncssh.import_known_hosts(
        f"[127.0.0.1]:{server.port} {server.host_key.export_public_key().decode()}"
    )
    return asyncssh.connect(
        "127.0.0.1",
        server.port,
        username="whoever",
        client_keys=[str(key)] if key else None,
        known_hosts=known,
        agent_path=None,
        **options,
    )


# The SIGWINCH handler comes before the first line: the test resizes as soon as it reads it.
SHOW_ENV = (
    "import os, signal, sys\n"
    "e = os.environ\n"
    "signal.signal(signal.SIGWINCH, lambda *_: os.write(1, "
    "f'resized {os.get_terminal_size(0)}\\n'.encode()))\n"  # print is not reentrant
    "print(e.get('DEPLOY_CONSOLE_USER'), '|', e.get('DEPLOY_CONSOLE_VIA'), '|', e['TERM'], "
    "e['COLORTERM'], os.isatty(0), os.get_terminal_size(0), flush=True)\n"
    "line = sys.stdin.readline()\n"
    "print('got', line.strip(), flush=True)\n"
    "sys.exit(3)\n"
)


async def test_a_session_runs_on_a_pty_with_no_identity_in_its_environment(
    serve: Serve, keys: dict[str, Path]
) -> None:
    server = await serve([sys.executable, "-c", SHOW_ENV])
    async with _connect(server, keys["bob"]) as conn:
        process = await conn.create_process(
            term_type="xterm-256color", term_size=(100, 30), encoding=None
        )
        first = await _read_until(process.stdout, b"\n")
        user, via, rest = first.decode().split(" | ")
        # Who the session acts for is handed to a forked console in memory (next test): an
        # environment variable would be one that any local process can set as well.
        assert (user, via) == ("None", "None")
        assert "xterm-256color truecolor True" in rest and "columns=100, lines=30" in rest
        process.change_terminal_size(120, 40)
        await _read_until(process.stdout, b"columns=120, lines=40")
        process.stdin.write(b"hello\r")
        await _read_until(process.stdout, b"got hello")
        assert (await asyncio.wait_for(process.wait(), DEADLINE)).exit_status == 3


async def test_a_forked_session_owns_its_pty_resizes_and_ends_with_its_status(
    sshd_config_path: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    # The way `deploy-console sshd` starts consoles: forked by the preloaded fork server.
    config = load_config(sshd_config_path)
    spawner = ForkedConsoles(["--probe"], entry="tests.session_probe:main")
    await spawner.start()
    server = SshServer(
        load_host_key(tmp_path / "data"),
        authorized_keys(config.sshd, config.source),
        ["unused"],
        spawner=spawner,
    )
    await server.start("127.0.0.1", 0)
    try:
        async with _connect(server, keys["alice"]) as conn:
            process = await conn.create_process(
                term_type="xterm-256color", term_size=(100, 30), encoding=None
            )
            first = await _read_until(process.stdout, b"\n")
            fingerprint = asyncssh.read_public_key(f"{keys['alice']}.pub").get_fingerprint("sha256")
            port = conn.get_extra_info("sockname")[1]
            who = f"alice (ssh {fingerprint} from 127.0.0.1:{port})/storefront-team,oncall"
            assert first.strip() == f"{who} ['--probe'] True (100, 30) True".encode(), first
            process.change_terminal_size(120, 40)
            await _read_until(process.stdout, b"resized (120, 40)")
            process.stdin.write(b"hello\r")
            await _read_until(process.stdout, b"got hello")
            assert (await asyncio.wait_for(process.wait(), DEADLINE)).exit_status == 3
    finally:
        await server.close()
    assert not server.sessions


async def test_a_key_logs_in_and_gets_the_dashboard_then_ctrl_q_ends_with_status_0(
    serve: Serve, keys: dict[str, Path]
) -> None:
    server = await serve()
    async with _connect(server, keys["alice"]) as conn:
        process = await conn.create_process(
            term_type="xterm-256color", term_size=(160, 45), encoding=None
        )
        await _read_until(process.stdout, b"9 projects")
        process.stdin.write(b"\x11")  # ctrl+q
        completed = await asyncio.wait_for(process.wait(), DEADLINE)
        assert completed.exit_status == 0
    assert not server.sessions


async def test_a_kiosk_server_serves_the_kiosk_and_its_quit_key_ends_the_session(
    serve: Serve, keys: dict[str, Path], sshd_config_path: Path, tmp_path: Path
) -> None:
    command = console_command(load_config(sshd_config_path), str(tmp_path / "k.db"), kiosk=True)
    assert command[-1] == "kiosk" and has_command("kiosk")
    server = await serve(command)
    async with _connect(server, keys["bob"]) as conn:
        process = await conn.create_process(
            term_type="xterm-256color", term_size=(160, 48), encoding=None
        )
        await _read_until(process.stdout, b"storefront")
        process.stdin.write(b"\x11")  # ctrl+q, the kiosk's one key
        completed = await asyncio.wait_for(process.wait(), DEADLINE)
        assert completed.exit_status == 0


@pytest.mark.parametrize(
    ("key", "options"),
    [
        ("mallory", {}),  # a key nobody configured
        (None, {"password": "secret", "preferred_auth": "password"}),
        (None, {"preferred_auth": "keyboard-interactive", "password": "secret"}),
    ],
    ids=["unknown-key", "password", "keyboard-interactive"],
)
async def test_only_configured_public_keys_log_in(
    serve: Serve,
    keys: dict[str, Path],
    key: str | None,
    options: dict[str, object],
) -> None:
    server = await serve(["/bin/true"])
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(server, keys[key] if key else None, **options):
            pass


async def test_everything_but_a_shell_on_a_terminal_is_refused_with_a_reason(
    serve: Serve, keys: dict[str, Path]
) -> None:
    server = await serve([sys.executable, "-c", "print('console ran')"])
    async with _connect(server, keys["alice"]) as conn:
        command = await asyncio.wait_for(conn.run("cat /etc/passwd"), DEADLINE)
        assert command.exit_status == 2 and command.stdout == ""
        assert (
            command.stderr
            == "deploy-console: commands are refused: connect without one to get the console\r\n"
        )
        no_pty = await asyncio.wait_for(conn.run(), DEADLINE)
        assert no_pty.exit_status == 2
        assert "a terminal is required" in str(no_pty.stderr)
        with pytest.raises((asyncssh.ChannelOpenError, asyncssh.SFTPError)):
            await asyncio.wait_for(conn.start_sftp_client(), DEADLINE)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", server.port)  # ssh -L
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 9)  # ssh -R
    assert not server.sessions


async def test_a_vanished_client_has_its_console_reaped(
    serve: Serve, keys: dict[str, Path]
) -> None:
    # The console and a child of its own (like the fleet worker): both must go.
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('pids', os.getpid(), child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    server = await serve([sys.executable, "-c", script])
    conn = await _connect(server, keys["alice"])
    process = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
    line = await _read_until(process.stdout, b"\n")
    pids = [int(word) for word in line.split()[1:3]]
    conn.abort()

    await await_until(
        lambda: not any(alive(pid) for pid in pids) and not server.sessions,
        "the console and its child to be reaped",
        DEADLINE,
    )


def test_the_host_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = load_host_key(tmp_path / "data")
    path = tmp_path / "data" / "sshd_host_ed25519_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_host_key(tmp_path / "data")
    assert again.get_fingerprint() == first.get_fingerprint()


def test_authorized_keys_lines_must_name_their_user(tmp_path: Path, keys: dict[str, Path]) -> None:
    bob = keys["bob"].with_suffix(".pub").read_text().strip()
    path = tmp_path / "authorized_keys"
    path.write_text(f'restrict,environment="DEPLOY_CONSOLE_USER=bob.smith" {bob}\n')
    (entry,) = read_authorized_keys(path)
    assert entry.user == "bob.smith" and entry.fingerprint.startswith("SHA256:")
    path.write_text(
        f'environment="DEPLOY_CONSOLE_USER=bob",environment="DEPLOY_CONSOLE_GROUPS=ops,oncall" '
        f"{bob}\n"
    )
    (entry,) = read_authorized_keys(path)
    assert (entry.user, entry.groups) == ("bob", ("ops", "oncall"))
    for line, message in [
        (
            f'environment="DEPLOY_CONSOLE_USER=bob",environment="DEPLOY_CONSOLE_GROUPS=a b" {bob}',
            "must be names",
        ),
        (bob, f'{path}:1: name the key\'s user with environment="DEPLOY_CONSOLE_USER=NAME"'),
        (f'command="/bin/sh",environment="DEPLOY_CONSOLE_USER=bob" {bob}', "option 'command'"),
        (f'environment="PATH=/tmp" {bob}', "only environment="),
        ('environment="DEPLOY_CONSOLE_USER=bob" ssh-ed25519 AAAAnot-a-key', "not an OpenSSH"),
    ]:
        path.write_text(line + "\n")
        with pytest.raises(ConfigError) as raised:
            read_authorized_keys(path)
        assert message in raised.value.message and "\n" not in raised.value.message


@pytest.mark.parametrize(
    ("sshd", "message"),
    [
        ({"listen": "localhost"}, "sshd.listen: must be an IP address"),
        ({"port": 70000}, "sshd.port: must be at most 65535"),
        ({"keys": [{"user": "alice", "key": "ssh-ed25519 nope"}]}, "sshd.keys[0].key: must be"),
        ({"keys": [{"user": "a b", "key": "x"}]}, "sshd.keys[0].user: 'a b' must be"),
        ({"keys": [{"user": "alice\n", "key": "x"}]}, "sshd.keys[0].user: 'alice\\n' must be"),
        ({"keys": [{"key": "x"}]}, "sshd.keys[0].user: is required"),
        ({"port": 22, "passwords": True}, "sshd.passwords: unknown key"),
        ({"max_sessions_per_user": 0}, "sshd.max_sessions_per_user: must be at least 1"),
        ({"max_sessions": 10**6}, "sshd.max_sessions: must be at most 10000"),
        ({"max_startups": -1}, "sshd.max_startups: must be at least 1"),
        ({"login_grace_seconds": float("nan")}, "sshd.login_grace_seconds: must be a number"),
        ({"login_grace_seconds": float("inf")}, "sshd.login_grace_seconds: must be a number"),
    ],
)
def test_bad_sshd_config_is_one_line_naming_the_key(
    world_config_path: Path, sshd: dict[str, object], message: str
) -> None:
    data = read_toml(world_config_path)
    data["sshd"] = sshd
    with pytest.raises(ConfigError) as raised:
        parse_config(data, Path("c.toml"))
    assert message in raised.value.message and "\n" not in raised.value.message


def test_sshd_refuses_bad_input_in_one_line(
    world_config_path: Path, sshd_config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["sshd", "--config", str(world_config_path)], "no SSH keys may log in"),
        (["sshd", "--config", str(sshd_config_path), "--port", "-1"], "--port must be between"),
    ]
    if not has_command("kiosk"):
        cases.append(
            (["sshd", "--kiosk", "--config", str(sshd_config_path)], "kiosk is not available yet")
        )
    for argv, message in cases:
        assert run(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_the_sshd_command_never_loads_textual(sshd_config_path: Path) -> None:
    script = (
        "import sys\n"
        "from screens.main import run\n"
        f"code = run(['sshd', '--config', {str(sshd_config_path)!r}, '--port', '99999'])\n"
        "print('textual' in sys.modules, 'rich' in sys.modules, code)\n"
    )
    result = run_python(script, timeout=DEADLINE)
    assert result.stdout.split() == ["False", "False", "2"], result.stderr


# -- the real OpenSSH client, through the command line server --------------------------------


def listening(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The port and host key fingerprint a starting `deploy-console sshd` says it listens with
    (its first line, within DEADLINE)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], DEADLINE)
    assert ready, f"sshd did not say it listens within {DEADLINE:g} s"
    line = process.stdout.readline().strip()
    assert line.startswith("sshd listening on 127.0.0.1:"), line
    return int(line.split()[3].rsplit(":", 1)[1]), line.split("host key ")[1].rstrip(")")


@contextlib.contextmanager
def running_sshd(config: Path, folder: Path) -> Iterator[tuple[int, str]]:
    """`deploy-console sshd` on `config` as its own process on a free port, its data and store
    in `folder`: (port, host key fingerprint). SIGTERM then ends it, with status 0."""
    env = dict(os.environ, DEPLOY_CONSOLE_DATA_DIR=str(folder / "data"), PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "screens.main", "sshd", "--config", str(config)]
    argv += ["--store", str(folder / "store.db"), "--port", "0"]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    try:
        yield listening(process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def sshd_process(sshd_config_path: Path, tmp_path: Path) -> Iterator[tuple[int, str, Path]]:
    """`deploy-console sshd` as its own process on a free port: (port, host key, data dir)."""
    with running_sshd(sshd_config_path, tmp_path) as (port, fingerprint):
        yield port, fingerprint, tmp_path / "data"


def test_the_host_key_survives_a_restart(
    sshd_process: tuple[int, str, Path], sshd_config_path: Path, tmp_path: Path
) -> None:
    _port, fingerprint, data = sshd_process
    assert load_host_key(data).get_fingerprint("sha256") == fingerprint


# Skipped where they are missing, failed in CI (tests/conftest.py, need_tool).
needs_openssh = pytest.mark.tools("ssh", "tmux")


def _ssh_argv(port: int, key: Path, known_hosts: Path) -> list[str]:
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "alice@127.0.0.1",
    ]


@pytest.fixture
def alice_ssh(
    sshd_process: tuple[int, str, Path], keys: dict[str, Path], tmp_path: Path
) -> list[str]:
    """Alice's OpenSSH command line to the sshd process (the test's own known_hosts)."""
    port, _fingerprint, _data = sshd_process
    return _ssh_argv(port, keys["alice"], tmp_path / "known_hosts")


@needs_openssh
def test_openssh_in_tmux_sees_the_dashboard_moves_opens_a_project_and_quits(
    alice_ssh: list[str], tmp_path: Path
) -> None:
    status_file = tmp_path / "status"
    session = f"sshd-test-{os.getpid()}"
    ssh = " ".join(alice_ssh)
    tmux = ["tmux", "-L", session, "-f", "/dev/null"]
    shell = f"{ssh}; echo $? > {status_file}; sleep 600"
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "45", shell],
        check=True,
        env=dict(os.environ, TERM="xterm-256color"),
    )

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    def keys_(*names: str) -> None:
        subprocess.run([*tmux, "send-keys", "-t", session, *names], check=True)

    def shown(what: str, *texts: str) -> None:
        wait_until(lambda: all(text in screen() for text in texts), what, DEADLINE)

    try:
        shown("the dashboard", "refreshed", "storefront")
        keys_("Down", "Enter")  # checkout-api in staging
        shown("the project screen", "PHP checkout and payments API")
        keys_("Escape")
        shown("the dashboard again", "9 projects")
        keys_("C-q")
        wait_until(status_file.exists, "ssh to exit", DEADLINE)
        wait_until(lambda: status_file.read_text().strip() != "", "ssh's status", DEADLINE)
        assert status_file.read_text().strip() == "0"
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def _run_ssh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The OpenSSH client to its end, its output kept."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE)


@needs_openssh
def test_openssh_commands_and_passwords_are_refused(alice_ssh: list[str]) -> None:
    argv = alice_ssh
    command = _run_ssh([*argv, "id"])
    assert command.returncode == 2 and command.stdout == ""
    assert "deploy-console: 'id' is not a command over SSH: run one of" in command.stderr
    password = _run_ssh(
        [*argv[:-1], "-o", "PreferredAuthentications=password,keyboard-interactive", argv[-1]]
    )
    assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr


def _connects(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@needs_openssh
def test_openssh_port_forwarding_is_refused(
    sshd_process: tuple[int, str, Path], alice_ssh: list[str]
) -> None:
    port = sshd_process[0]
    options, target = alice_ssh[:-1], alice_ssh[-1]
    remote = _run_ssh(
        [*options, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", target]
    )
    assert remote.returncode == 255 and "remote port forwarding failed" in remote.stderr
    with socket.socket() as probe:  # a free local port for -L
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    forward = subprocess.Popen(
        [*options, "-N", "-L", f"{local}:127.0.0.1:{port}", target],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _connects(local), "ssh's local end of -L", DEADLINE)
        with socket.create_connection(("127.0.0.1", local), DEADLINE) as through:
            through.settimeout(DEADLINE)
            assert through.recv(64) == b""  # the server refused the channel: closed at once
    finally:
        forward.kill()  # SIGKILL: ssh -N has been seen to outlive SIGTERM by 30 s on a loaded host
        _, stderr = forward.communicate(timeout=DEADLINE)
    assert "open failed" in stderr, stderr


async def test_x11_forwarding_is_refused(serve: Serve, keys: dict[str, Path]) -> None:
    server = await serve([sys.executable, "-c", "print('console ran')"])
    async with _connect(server, keys["alice"]) as conn:
        with pytest.raises(asyncssh.ChannelOpenError, match="X11 forwarding request failed"):
            await asyncio.wait_for(
                conn.create_process(
                    term_type="xterm",
                    x11_forwarding=True,  # ssh -X: the server says no, the session does not open
                    x11_display="127.0.0.1:0",
                    x11_auth_path="/dev/null",
                ),
                DEADLINE,
            )
    assert not server.sessions


async def _serve_agent_probe(serve: Serve, caplog: pytest.LogCaptureFixture) -> SshServer:
    """A server whose console prints the agent socket it was given ("agent: None": none), with
    asyncssh's log (where a denied forwarding is said) kept."""
    caplog.set_level(logging.INFO, logger="asyncssh")
    return await serve(
        [sys.executable, "-c", "import os; print('agent:', os.environ.get('SSH_AUTH_SOCK'))"]
    )


async def test_agent_forwarding_is_refused(
    serve: Serve, keys: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # ssh -A: the client asks to forward its agent; the server denies it (no agent socket is
    # made for the session) and the console runs without one.
    server = await _serve_agent_probe(serve, caplog)
    async with _connect(server, keys["alice"], agent_forwarding=str(tmp_path / "agent")) as conn:
        process = await conn.create_process(term_type="xterm", encoding=None)
        output = await asyncio.wait_for(process.stdout.read(), DEADLINE)
        await asyncio.wait_for(process.wait(), DEADLINE)
    assert output.strip() == b"agent: None"
    assert "Agent forwarding request denied" in caplog.text


@needs_openssh
@pytest.mark.tools("ssh-agent")
async def test_openssh_agent_forwarding_is_refused(
    serve: Serve, keys: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # ssh -A with a running agent: the server denies the forwarding; the console sees no agent.
    server = await _serve_agent_probe(serve, caplog)
    agent_socket = tmp_path / "agent.sock"
    agent = await asyncio.create_subprocess_exec(
        "ssh-agent", "-D", "-a", str(agent_socket),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await await_until(agent_socket.exists, "ssh-agent's socket", DEADLINE)
        known = tmp_path / "known_hosts"
        known.write_text(
            f"[127.0.0.1]:{server.port} {server.host_key.export_public_key().decode()}"
        )
        argv = _ssh_argv(server.port, keys["alice"], known)
        ssh = await asyncio.create_subprocess_exec(
            *argv[:-1], "-tt", "-A", "-o", "ForwardAgent=yes", argv[-1],
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ, SSH_AUTH_SOCK=str(agent_socket)),
        )  # fmt: skip
        out, err = await asyncio.wait_for(ssh.communicate(), DEADLINE)
    finally:
        agent.kill()
        await agent.wait()
    assert ssh.returncode == 0, err
    assert b"agent: None" in out
    assert "Agent forwarding request denied" in caplog.text
