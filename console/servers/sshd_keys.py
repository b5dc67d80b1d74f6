"""The SSH server's keys: its host key, and the public keys allowed in with the user each names."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from console.config import SshdSettings
from console.config.paths import private_dir
from console.errors import ConfigError, ConsoleError

HOST_KEY_FILE = "sshd_host_ed25519_key"
# The authorized_keys option that names a key's user (read from the file, never from a
# process's environment: the session's console is handed its actor by the spawner).
USER_ENV = "DEPLOY_CONSOLE_USER"
GROUPS_ENV = "DEPLOY_CONSOLE_GROUPS"  # likewise the key's groups, comma-separated
USER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
# Options of an authorized_keys line that this server enforces anyway (or that restrict more).
HARMLESS_OPTIONS = frozenset(
    {"no-agent-forwarding", "no-port-forwarding", "no-x11-forwarding", "no-user-rc", "restrict"}
)
_OPTION = re.compile(r'([A-Za-z0-9-]+)(?:="((?:[^"\\]|\\.)*)")?')


class SshdError(ConsoleError):
    """The SSH server cannot start (bad keys, address in use, host key unreadable)."""


@dataclass(frozen=True)
class AuthorizedKey:
    """A public key allowed in, the user it logs in as, and where it was configured."""

    user: str
    key: asyncssh.SSHKey
    origin: str
    groups: tuple[str, ...] = ()  # what roles may be granted to (config's "@name")

    @property
    def fingerprint(self) -> str:
        return str(self.key.get_fingerprint("sha256"))


def load_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The server's host key, generated on first start (mode 0600) and reused after."""
    path = data_dir / HOST_KEY_FILE
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    except (OSError, asyncssh.KeyImportError) as error:
        raise SshdError(f"{path}: cannot read the SSH host key: {reason_of(error)}") from None
    key = asyncssh.generate_private_key("ssh-ed25519", comment="deploy-console sshd")
    try:
        private_dir(data_dir)
        # O_EXCL: two servers starting at once must not both write (the second reads it).
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_host_key(data_dir)
    except OSError as error:
        raise SshdError(f"{path}: cannot write the SSH host key: {reason_of(error)}") from None
    with os.fdopen(handle, "wb") as output:
        output.write(key.export_private_key())
    return key


def authorized_keys(settings: SshdSettings, source: Path) -> dict[bytes, AuthorizedKey]:
    """Every key allowed in, by its public blob: the config's keys, then the file's."""
    allowed: dict[bytes, AuthorizedKey] = {}

    def add(entry: AuthorizedKey) -> None:
        blob = entry.key.public_data
        known = allowed.get(blob)
        if known is not None and known.user != entry.user:
            raise ConfigError(
                f"{entry.origin}: the same key is already {known.user!r}'s ({known.origin})"
            )
        allowed.setdefault(blob, entry)

    for index, configured in enumerate(settings.keys):
        origin = f"{source}: sshd.keys[{index}].key"
        key = _public_key(configured.key, origin)
        add(AuthorizedKey(configured.user, key, origin, configured.groups))
    if settings.authorized_keys is not None:
        for entry in read_authorized_keys(settings.authorized_keys):
            add(entry)
    return allowed


def read_authorized_keys(path: Path) -> list[AuthorizedKey]:
    """An OpenSSH authorized_keys file whose every line names its user (environment=...)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read authorized keys: {reason_of(error)}") from None
    entries = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        origin = f"{path}:{number}"
        options, key_text = _split_options(line, origin)
        user = None
        groups: tuple[str, ...] = ()
        for name, value in options:
            lowered = name.lower()
            if lowered == "environment" and value is not None:
                variable, _, named = value.partition("=")
                if variable == USER_ENV:
                    user = named
                elif variable == GROUPS_ENV:
                    groups = tuple(group for group in named.split(",") if group)
                    if not all(USER_PATTERN.match(group) for group in groups):
                        raise ConfigError(
                            f"{origin}: groups {named!r} must be names, comma-separated"
                        )
                else:
                    raise ConfigError(
                        f'{origin}: only environment="{USER_ENV}=..." and "{GROUPS_ENV}=..." '
                        f"are accepted, not {variable!r}"
                    )
            elif lowered not in HARMLESS_OPTIONS:
                raise ConfigError(f"{origin}: option {name!r} is not supported here")
        if user is None:
            raise ConfigError(f'{origin}: name the key\'s user with environment="{USER_ENV}=NAME"')
        if not USER_PATTERN.match(user):
            raise ConfigError(f"{origin}: user {user!r} must be letters, digits and . _ @ -")
        entries.append(AuthorizedKey(user, _public_key(key_text, origin), origin, groups))
    return entries


def _split_options(line: str, origin: str) -> tuple[list[tuple[str, str | None]], str]:
    """(options, the key and its comment) of an authorized_keys line."""
    if line.startswith(("ssh-", "ecdsa-", "sk-")):
        return [], line
    options: list[tuple[str, str | None]] = []
    position = 0
    while True:
        match = _OPTION.match(line, position)
        if match is None:
            raise ConfigError(f"{origin}: cannot read the options before the key")
        value = match.group(2)
        options.append((match.group(1), None if value is None else value.replace('\\"', '"')))
        position = match.end()
        if line[position : position + 1] == ",":
            position += 1
            continue
        if line[position : position + 1] in (" ", "\t"):
            return options, line[position:].strip()
        raise ConfigError(f"{origin}: cannot read the options before the key")


def _public_key(text: str, origin: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise ConfigError(f"{origin}: not an OpenSSH public key") from None


def reason_of(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__
