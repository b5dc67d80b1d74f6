"""Hand the terminal to `ssh` (console.ssh.shell) and take it back: the app suspended, its
event loop running on (deploys go on), nothing painted until the shell has ended."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textual.app import App, SuspendNotSupported

from console.config import SshSettings
from console.ssh.shell import ended_why, shell_argv


@contextlib.contextmanager
def _interrupts_to_the_shell() -> Iterator[None]:
    """ctrl+c while ssh connects reaches the whole foreground group: it ends ssh, not the
    console. A handler (not SIG_IGN) is reset to the default in the child by exec."""
    try:
        previous = signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    except ValueError:  # not the main thread: nothing to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def run_ssh(argv: list[str]) -> int:
    """Run ssh on the terminal the console handed over; its exit status."""
    process = await asyncio.create_subprocess_exec(*argv)
    return await process.wait()


async def open_shell(app: App[Any], settings: SshSettings, address: str, instance_id: str) -> str:
    """A shell on `address` with the person's own key; "" once it ended, else why it did not
    open (one line)."""
    with tempfile.TemporaryDirectory(prefix="deploy-console-ssh-") as folder:
        log = Path(folder) / "ssh.log"
        argv = shell_argv(settings, address, log=log)
        try:
            with app.batch_update(), app.suspend(), _interrupts_to_the_shell():
                out = sys.__stdout__
                if out is not None:
                    out.write(
                        f"deploy-console: ssh to {instance_id} ({address}) with your own key;"
                        " leave the shell to come back.\n"
                    )
                    out.flush()
                status = await run_ssh(argv)
        except SuspendNotSupported:
            return f"no shell on {instance_id}: this terminal cannot be handed to ssh"
        except OSError as error:
            return f"no shell on {instance_id}: cannot run ssh: {error.strerror or error}"
        text = log.read_text(errors="replace") if log.exists() else ""
    reason = ended_why(text, status)
    return f"no shell on {instance_id}: {reason}" if reason else ""
