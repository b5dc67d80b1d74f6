"""The channels' senders: webhook (aiohttp), email (smtplib with STARTTLS and login, in a
thread), command (argv, no shell, the event on stdin). Each raises NotifyError with its
secrets masked, and never blocks longer than its timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import smtplib
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from console.config.notify import Channel, CommandChannel, EmailChannel, WebhookChannel
from console.errors import ConsoleError
from console.notify import message
from console.safe_text import SecretMasker, harmless
from console.store.outbox import OutboxEvent

USER_AGENT = "deploy-console-notify/1"
MAX_ERROR = 300  # characters of an answer or an error kept


class NotifyError(ConsoleError):
    """A delivery attempt failed (the message is masked: no URL token, no password)."""


def _secret_of_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise NotifyError(f"cannot read the password file {path}: {error.strerror}") from None


def password(channel: EmailChannel) -> str | None:
    """The login's password, from the environment or its file (never from the config)."""
    if channel.password_env is not None:
        value = os.environ.get(channel.password_env)
        if not value:
            raise NotifyError(f"environment variable {channel.password_env} is not set")
        return value
    if channel.password_file is not None:
        return _secret_of_file(channel.password_file)
    return None


def webhook_url(channel: WebhookChannel) -> str:
    if channel.url is not None:
        return channel.url
    value = os.environ.get(channel.url_env or "")
    if not value:
        raise NotifyError(f"environment variable {channel.url_env} is not set")
    return value


def masker(channel: Channel) -> SecretMasker:
    """Every secret of a channel, for the errors it may put in words."""
    secrets = SecretMasker()
    if isinstance(channel, WebhookChannel):
        with contextlib.suppress(NotifyError):
            url = webhook_url(channel)
            secrets.add(url)
            parts = urlsplit(url)
            for piece in (parts.path, parts.query, *parts.path.split("/"), parts.password or ""):
                if len(piece.strip("/")) >= 4:
                    secrets.add(piece)
    elif isinstance(channel, EmailChannel):
        with contextlib.suppress(NotifyError):
            secret = password(channel)
            if secret:
                secrets.add(secret)
    return secrets


async def send(channel: Channel, event: OutboxEvent) -> None:
    """One attempt to deliver `event` on `channel`; NotifyError (masked) when it fails."""
    secrets = masker(channel)
    try:
        async with asyncio.timeout(channel.timeout):
            if isinstance(channel, WebhookChannel):
                await _webhook(channel, event)
            elif isinstance(channel, EmailChannel):
                await asyncio.to_thread(_email, channel, event)
            else:
                await _command(channel, event)
    except TimeoutError:
        raise NotifyError(f"no answer within {channel.timeout:g}s") from None
    except NotifyError as error:
        raise NotifyError(_clean(secrets, error.message)) from None
    except Exception as error:  # aiohttp, OSError, SMTP, a bad URL...: said, masked, retried
        words = str(error) or type(error).__name__
        raise NotifyError(_clean(secrets, f"{type(error).__name__}: {words}")) from None


def _clean(secrets: SecretMasker, text: str) -> str:
    return harmless(secrets.mask(text))[:MAX_ERROR]


async def _webhook(channel: WebhookChannel, event: OutboxEvent) -> None:
    data = message.text_bytes(event) if channel.format == "text" else message.json_bytes(event)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": event.key,
        "User-Agent": USER_AGENT,
        "X-Deploy-Console-Event": event.event,
    }
    timeout = aiohttp.ClientTimeout(total=channel.timeout)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(webhook_url(channel), data=data, headers=headers, allow_redirects=False) as r,
    ):
        if r.status >= 300:
            answer = " ".join((await r.text(errors="replace"))[:400].split())
            answer = "" if answer.startswith("<") else answer[:120]  # an HTML page says nothing
            raise NotifyError(f"HTTP {r.status} {r.reason or ''}: {answer}".strip(": "))


def _email(channel: EmailChannel, event: OutboxEvent) -> None:
    mail = message.email(event, channel.sender, channel.to)
    secret = password(channel)
    with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout) as smtp:
        smtp.ehlo()
        if channel.starttls:
            context = ssl.create_default_context(
                cafile=str(channel.ca_file) if channel.ca_file else None
            )
            smtp.starttls(context=context)
            smtp.ehlo()
        if channel.username is not None and secret is not None:
            smtp.login(channel.username, secret)
        smtp.send_message(mail)


async def _command(channel: CommandChannel, event: OutboxEvent) -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *channel.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        raise NotifyError(f"cannot run {channel.argv[0]}: {error.strerror}") from None
    try:
        output, _ = await process.communicate(message.json_bytes(event))
    except BaseException:  # the timeout: the program does not outlive its attempt
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise NotifyError(f"{channel.argv[0]} exited {process.returncode}: {tail[0]}".strip(": "))
