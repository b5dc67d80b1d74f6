"""A person's own shell on an instance: the OpenSSH command line, with their own key (their
agent, ~/.ssh) and the console's host-key checks; never the deploy's key."""

from __future__ import annotations

import shlex
from pathlib import Path

from console.config import SshSettings
from console.safe_text import harmless

SSH_CLIENT = "ssh"
# Lines of ssh's own log (-E) that are not why it failed: notices, and what the outer ssh says
# after the jump's ssh (ProxyCommand) failed first with the reason.
_NOISE = (
    "Warning: Permanently added",
    "Pseudo-terminal will not be allocated",
    "kex_exchange_identification:",
    "ssh_exchange_identification:",
    "Connection closed by",
    "Connection to ",
    "Shared connection to ",
    "debug",
)
MAX_REASON = 240


def _checks(settings: SshSettings, log: Path | None) -> list[str]:
    """The options both hops take: host keys only from the console's known_hosts (the same
    check as a deploy's, host CA lines included), public keys only, nothing forwarded."""
    options = [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={settings.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        f"ConnectTimeout={max(1, round(settings.connect_timeout))}",
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "ClearAllForwardings=yes",
    ]
    if log is not None:
        options += ["-E", str(log)]
    return options


def shell_argv(
    settings: SshSettings, address: str, *, log: Path | None = None, client: str = SSH_CLIENT
) -> list[str]:
    """`ssh` to `address` (through the cluster's jump host, if any) as the person running it.

    No -i and no IdentityFile: OpenSSH offers the person's own keys (their agent, ~/.ssh and
    ~/.ssh/config), never settings.key (the deploy's). No user is given either: the person's
    own login name or their ssh config's User. `log` (ssh -E) collects ssh's own messages so
    the console can say in one line why a shell did not open.
    """
    argv = [client, *_checks(settings, log)]
    jump = settings.jump_address
    if jump is not None:
        host, port = jump
        hop = [client, *_checks(settings, log), "-p", str(port), "-W", "%h:%p", host]
        argv += ["-o", "ProxyCommand=" + shlex.join(hop)]
    argv += ["-p", str(settings.port), "-t", address]
    return argv


def shell_refusal(
    *,
    door: str,
    web: bool,
    settings: SshSettings | None,
    cluster: str,
    address: str,
    state: str,
    client: str | None,
) -> str:
    """Why no shell opens here ("" when one may): the view, the door, the cluster's settings,
    the instance, the ssh client; the role is checked apart (console.access)."""
    if web or door == "web":
        return "ssh opens in a terminal: the web view cannot hand its page to a shell"
    if door == "ssh":
        return (
            "ssh opens from a console on your own machine: this session runs on the console's "
            "host, where your own key is not"
        )
    if settings is None:
        return f"cluster {cluster} has no [ssh] settings: no known_hosts to check the host with"
    if state != "running":
        return f"the instance is {state}"
    if not address:
        return "the instance has no private address"
    if client is None:
        return "no ssh client (OpenSSH) on PATH"
    return ""


SSH_FAILED = 255  # OpenSSH's own failure; any other status is the remote shell's


def ended_why(log: str, status: int) -> str:
    """Why ssh could not give a shell, in one line: its own messages but the notices ("" when
    the shell ran and ended, whatever the remote shell's own exit status)."""
    if status != SSH_FAILED:
        return ""
    lines = [
        line.strip()
        for line in log.splitlines()
        if line.strip() and not line.strip().startswith(_NOISE)
    ]
    reason = " ".join(lines) if lines else f"ssh exited with status {status}"
    if "Permission denied (publickey" in reason:
        reason += " None of your own keys (ssh-agent, ~/.ssh) is accepted there."
    reason = harmless(" ".join(reason.split()))
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
