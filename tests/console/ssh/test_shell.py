"""A person's own shell on an instance: the OpenSSH command line (never the deploy's key, the
console's host-key checks), why none opens, and real runs of it through the world's jump host."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from console.config import SshSettings
from console.ssh.shell import SSH_FAILED, ended_why, shell_argv, shell_refusal
from console.world.ssh import WorldSsh
from tests.conftest import need_tool

ADDRESS = "10.20.0.1"
SETTINGS = SshSettings(
    user="deploy",
    key=Path("/etc/deploy-console/deploy_ed25519"),
    known_hosts=Path("/etc/deploy console/known_hosts"),
    jump_host="bastion.example:2222",
    connect_timeout=7.5,
)


def options(argv: list[str]) -> dict[str, str]:
    found = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "-o":
            name, _, setting = value.partition("=")
            found[name] = setting
    return found


def test_the_argv_checks_host_keys_as_a_deploy_does_and_never_names_the_deploy_key() -> None:
    argv = shell_argv(SETTINGS, ADDRESS, log=Path("/tmp/x/ssh.log"))
    assert argv[0] == "ssh"
    assert argv[-4:] == ["-p", "22", "-t", ADDRESS]
    said = options(argv)
    assert said["StrictHostKeyChecking"] == "yes"
    assert said["UserKnownHostsFile"] == "/etc/deploy console/known_hosts"
    assert said["GlobalKnownHostsFile"] == "/dev/null"
    assert said["PreferredAuthentications"] == "publickey"
    assert said["ConnectTimeout"] == "8"
    assert said["ForwardAgent"] == "no"
    # The jump: the same checks, on the jump host's port, through ProxyCommand.
    hop = shlex.split(said["ProxyCommand"])
    assert hop[-5:] == ["-p", "2222", "-W", "%h:%p", "bastion.example"]
    assert options(hop)["StrictHostKeyChecking"] == "yes"
    assert options(hop)["UserKnownHostsFile"] == "/etc/deploy console/known_hosts"
    # Nothing anywhere names the deploy's key or its user: the person's own key and name.
    whole = " ".join(argv)
    assert str(SETTINGS.key) not in whole and "deploy_ed25519" not in whole
    assert "-i" not in argv + hop and "IdentityFile" not in whole
    assert "deploy@" not in whole and "-l" not in argv + hop
    assert argv[argv.index("-E") : argv.index("-E") + 2] == ["-E", "/tmp/x/ssh.log"]


def test_without_a_jump_host_it_goes_straight_to_the_instance() -> None:
    argv = shell_argv(dataclasses.replace(SETTINGS, jump_host=None, port=2200), ADDRESS)
    assert "ProxyCommand" not in options(argv) and "-E" not in argv
    assert argv[-4:] == ["-p", "2200", "-t", ADDRESS]


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ({"web": True}, "ssh opens in a terminal: the web view cannot hand its page to a shell"),
        ({"door": "web"}, "ssh opens in a terminal: the web view cannot hand its page to a shell"),
        ({"door": "ssh"}, "ssh opens from a console on your own machine: this session runs on "
                          "the console's host, where your own key is not"),
        ({"settings": None}, "cluster prod1 has no [ssh] settings: no known_hosts to check the "
                             "host with"),
        ({"state": "stopped"}, "the instance is stopped"),
        ({"address": ""}, "the instance has no private address"),
        ({"client": None}, "no ssh client (OpenSSH) on PATH"),
        ({}, ""),
    ],
)  # fmt: skip
def test_why_no_shell_opens(where: dict[str, object], reason: str) -> None:
    given: dict[str, object] = {
        "door": "local",
        "web": False,
        "settings": SETTINGS,
        "cluster": "prod1",
        "address": ADDRESS,
        "state": "running",
        "client": "/usr/bin/ssh",
    }
    assert shell_refusal(**{**given, **where}) == reason  # type: ignore[arg-type]


def test_ended_why_is_ssh_s_own_words_only_when_ssh_failed() -> None:
    log = "Warning: Permanently added 'x'\nuser@127.0.0.1: Permission denied (publickey).\n"
    assert ended_why(log, SSH_FAILED) == (
        "user@127.0.0.1: Permission denied (publickey). None of your own keys (ssh-agent, "
        "~/.ssh) is accepted there."
    )
    # The jump's ssh says why first; what the outer ssh says after is no reason.
    jumped = (
        "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
        "checking.\nHost key verification failed.\n"
        "kex_exchange_identification: Connection closed by remote host\n"
        "Connection closed by UNKNOWN port 65535\n"
    )
    assert ended_why(jumped, SSH_FAILED) == (
        "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
        "checking. Host key verification failed."
    )
    assert len(ended_why("x" * 1000, SSH_FAILED)) == 240
    assert ended_why(log, 0) == "" and ended_why("", 3) == ""  # the remote shell's own status
    assert ended_why("", SSH_FAILED) == "ssh exited with status 255"
    assert ended_why("kex: \x1b]0;pwned\x07 bye\n", SSH_FAILED) == "kex: \\x1b]0;pwned\\x07 bye"


# -- for real: OpenSSH through the world's jump host ----------------------------------------


async def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        raise AssertionError(f"ssh hung: {argv}") from None
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    return {**env, **extra}


@pytest.mark.tools("ssh")
async def test_without_a_key_of_their_own_it_fails_in_one_line_even_with_the_deploy_key_at_hand(
    ssh_settings: SshSettings, tmp_path: Path
) -> None:
    need_tool("ssh")
    log = tmp_path / "ssh.log"
    # The console has the deploy key (ssh_settings.key): the shell never offers it.
    status, _ = await _run(shell_argv(ssh_settings, ADDRESS, log=log), _env())
    assert status == SSH_FAILED
    reason = ended_why(log.read_text(), status)
    assert "Permission denied (publickey" in reason and "\n" not in reason


@pytest.mark.tools("ssh")
async def test_a_host_key_the_console_does_not_trust_stops_it(
    ssh_settings: SshSettings, tmp_path: Path
) -> None:
    need_tool("ssh")
    empty = tmp_path / "known_hosts-empty"
    empty.write_text("")
    log = tmp_path / "ssh.log"
    settings = dataclasses.replace(ssh_settings, known_hosts=empty)
    status, _ = await _run(shell_argv(settings, ADDRESS, log=log), _env())
    assert status == SSH_FAILED
    assert "Host key verification failed." in ended_why(log.read_text(), status)


@pytest.mark.tools("ssh", "ssh-agent", "ssh-add")
async def test_with_their_own_key_in_their_agent_it_reaches_the_instance(
    ssh_settings: SshSettings, world_ssh: WorldSsh, tmp_path: Path
) -> None:
    """A key the person's agent holds (here one the world's hosts accept) opens the way:
    jump host and instance both verified by the console's known_hosts (the instance by the
    world's host CA). The world's instances run commands only: it says so and ends."""
    need_tool("ssh", "ssh-agent", "ssh-add")
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            await asyncio.sleep(0.05)
        env = _env(SSH_AUTH_SOCK=str(socket_path))
        added = subprocess.run(
            ["ssh-add", str(world_ssh.client_key_path)], env=env, capture_output=True, timeout=30
        )
        assert added.returncode == 0, added.stderr
        log = tmp_path / "ssh.log"
        status, out = await _run(shell_argv(ssh_settings, ADDRESS, log=log), env)
        assert "this host runs commands only" in out
        assert status == 1  # the instance's own answer: ssh itself did not fail
        assert ended_why(log.read_text(), status) == ""
    finally:
        agent.terminate()
        agent.wait(10)
