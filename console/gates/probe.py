"""One probe of something outside: an HTTP GET of a URL template or a command, with a timeout.

The answer is what gets recorded (audit rows, refusals, the deploy log): the status and the
first line of what came back, masked of the console's secrets and made harmless to show.
Commands run without a shell, in a clean environment (never the console's own), in a process
group of their own that a timeout kills whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from console.config.gates import ProbeSettings, fill
from console.safe_text import SecretMasker, harmless

__all__ = ["Answer", "CommandResult", "clean_environment", "console_masker", "probe", "run_command"]

# What is kept of an answer's text (a whole HTML page is no answer), and of a command's output.
ANSWER_LENGTH = 200
BODY_BYTES = 4096
OUTPUT_BYTES = 64 * 1024
OUTPUT_LINES = 200
# Names of the console's environment variables whose values are secrets: never in an answer.
_SECRET_NAMES = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "API_KEY")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Answer:
    """What a probe said: whether it passed, and in one line how (status: first line)."""

    passed: bool
    text: str


@dataclass(frozen=True)
class CommandResult:
    """A command's end: its exit code (None: killed at its timeout) and its output lines."""

    code: int | None
    lines: tuple[str, ...] = ()
    timed_out: bool = False
    error: str = ""
    seconds: float = 0.0
    truncated: bool = field(default=False)

    @property
    def passed(self) -> bool:
        return self.code == 0

    def first_line(self) -> str:
        return next((line.strip() for line in self.lines if line.strip()), "")

    def status(self, timeout: float) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {timeout:g} s (killed)"
        return f"exit {self.code}"


def console_masker(*extra: str) -> SecretMasker:
    """A masker of the console's own secrets: environment values whose names say they are
    secret (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, *_PASSWORD, ...), and `extra`."""
    values = [
        value
        for name, value in os.environ.items()
        if any(word in name.upper() for word in _SECRET_NAMES) and len(value) >= 4
    ]
    return SecretMasker([*values, *(value for value in extra if value)])


def shown(text: str, masker: SecretMasker) -> str:
    """`text` as it may be recorded: masked, escape sequences made visible, one short line."""
    line = harmless(masker.mask(text))
    return line if len(line) <= ANSWER_LENGTH else line[: ANSWER_LENGTH - 1] + "…"


def clean_environment(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """A command's whole environment: PATH (the console's own bin folder first, so
    `deploy-console` is this console), a UTF-8 locale, and `extra`. Nothing of the console's."""
    path = f"{Path(sys.executable).parent}:{SYSTEM_PATH}"
    return {"PATH": path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", **extra}


async def probe(
    settings: ProbeSettings, values: Mapping[str, str], masker: SecretMasker | None = None
) -> Answer:
    """Ask once: GET the URL (2xx passes) or run the command (exit 0 passes)."""
    masker = masker or console_masker()
    if settings.url is not None:
        return await _get(settings, values, masker)
    argv = [fill(part, dict(values)) for part in settings.command]
    result = await run_command(argv, settings.timeout, env=clean_environment())
    first = result.first_line()
    said = result.status(settings.timeout) + (f": {first}" if first else "")
    return Answer(result.passed, shown(said, masker))


async def _get(settings: ProbeSettings, values: Mapping[str, str], masker: SecretMasker) -> Answer:
    assert settings.url is not None
    url = fill(settings.url, {name: quote(value, safe="") for name, value in values.items()})
    parts = urlsplit(url)
    if parts.password:
        masker.add(parts.password)
    host = parts.hostname or "?"
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    # encoded: the quoted values reach the server as they are (no requoting).
    target = URL(url, encoded=True)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.get(target, headers={"Accept": "application/json, text/plain"}) as response,
        ):
            body = await response.content.read(BODY_BYTES)
            status = response.status
    except TimeoutError:
        return Answer(False, f"no answer from {host} within {settings.timeout:g} s")
    except aiohttp.ClientError as error:
        return Answer(False, shown(f"cannot reach {host}: {type(error).__name__}", masker))
    first = next(
        (line.strip() for line in body.decode("utf-8", "replace").splitlines() if line.strip()),
        "",
    )
    said = f"HTTP {status}" + (f": {first}" if first else "")
    return Answer(200 <= status < 300, shown(said, masker))


async def run_command(
    argv: list[str], timeout: float, *, env: Mapping[str, str], stdin: bytes | None = None
) -> CommandResult:
    """Run `argv` (no shell) with `stdin`, its output and errors as one stream; killed with
    its whole process group at `timeout`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            close_fds=True,
        )
    except OSError as error:
        return CommandResult(None, error=f"cannot run {argv[0]!r}: {error.strerror or error}")
    output = bytearray()
    truncated = False

    async def talk() -> None:
        nonlocal truncated
        assert process.stdout is not None
        if process.stdin is not None:
            with contextlib.suppress(ConnectionError):
                process.stdin.write(stdin or b"")
                await process.stdin.drain()
            process.stdin.close()
        while chunk := await process.stdout.read(65536):
            if len(output) < OUTPUT_BYTES:
                output.extend(chunk[: OUTPUT_BYTES - len(output)])
            else:
                truncated = True
        await process.wait()

    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await talk()
    except TimeoutError:
        timed_out = True
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    lines = output.decode("utf-8", "replace").splitlines()
    truncated = truncated or len(lines) > OUTPUT_LINES
    return CommandResult(
        None if timed_out else process.returncode,
        tuple(lines[:OUTPUT_LINES]),
        timed_out=timed_out,
        seconds=loop.time() - started,
        truncated=truncated,
    )
