"""Who acts: an actor established by the door it came through, never claimed by the caller.

Locally the actor is the OS account of the process (its real uid, looked up in the password
database: never $USER, $LOGNAME or any variable a user can set). A trusted door (the SSH
server, the web front) authenticates a person and hands the session it starts that person's
`Actor` in memory, before the session's console runs (`enter_session`); nothing the session's
user can type, export or pass on a command line can change it.

The audit keeps an actor as one canonical text that the hash chain covers, e.g.
`alice (ssh SHA256:abc... from 127.0.0.1:50412)`, and the store derives the separate fields
(user, door, key, source) from it, so that a filter matches the user whatever door they came by.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

from console.closing import setting
from console.errors import ConsoleError

# Doors: how an actor reached the console.
LOCAL, SSH, WEB, RUNNER, CI = "local", "ssh", "web", "runner", "ci"
DOORS = (LOCAL, SSH, WEB, RUNNER, CI)
# A user name the audit text can hold unambiguously (no blanks, no parentheses).
USER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}$")
_SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9_.:\[\]%-]{1,80}$")
_KEY_PATTERN = re.compile(r"^SHA256:[A-Za-z0-9+/=]{1,64}$")


class IdentityError(ConsoleError):
    """An actor that cannot be established (no account for the uid, a malformed name)."""


@dataclass(frozen=True)
class Actor:
    """A person (or service) and how they came: the door, the SSH key, the source address.

    `groups` are what roles may be granted to (Unix groups locally, a trusted proxy's group
    header on the web, the groups configured for an SSH key); they are not part of the audit
    text: roles are decided when the action is checked, and the audit records the decision.
    """

    user: str
    door: str = LOCAL
    key: str = ""  # the SSH key's SHA256 fingerprint
    source: str = ""  # the client's address (host:port)
    groups: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not USER_PATTERN.match(self.user):
            raise IdentityError(f"not a usable user name: {self.user!r}")
        if self.door not in DOORS:
            raise IdentityError(f"unknown door {self.door!r} (one of {', '.join(DOORS)})")
        if self.key and not _KEY_PATTERN.match(self.key):
            raise IdentityError(f"not an SSH key fingerprint: {self.key!r}")
        if self.source and not _SOURCE_PATTERN.match(self.source):
            raise IdentityError(f"not a source address: {self.source!r}")

    def __str__(self) -> str:
        """The canonical audit text: `alice`, `alice (web from 127.0.0.1:5000)`,
        `alice (ssh SHA256:... from 127.0.0.1:50412)`."""
        if self.door == LOCAL and not self.key and not self.source:
            return self.user
        words = [self.door]
        if self.key:
            words.append(self.key)
        if self.source:
            words += ["from", self.source]
        return f"{self.user} ({' '.join(words)})"

    def with_groups(self, groups: tuple[str, ...]) -> Actor:
        return replace(self, groups=tuple(groups))


def parse(text: str) -> Actor:
    """The actor an audit text names (the inverse of str(Actor)); IdentityError if it is not
    one. Rows written before doors were recorded read as local users, or as the door word."""
    user, _, rest = text.partition(" (")
    if not rest:
        return Actor(user)
    if not rest.endswith(")"):
        raise IdentityError(f"not an actor: {text!r}")
    words = rest[:-1].split(" ")
    door, key, source = words[0], "", ""
    words = words[1:]
    if words and words[0].startswith("SHA256:"):
        key, words = words[0], words[1:]
    if len(words) == 2 and words[0] == "from":
        source, words = words[1], []
    if words:
        raise IdentityError(f"not an actor: {text!r}")
    return Actor(user, door, key, source)


def actor_fields(text: str) -> dict[str, str]:
    """The fields of an audit text, as the store derives them (never raises: rows written by
    older versions or by the queue itself read as well as they can)."""
    try:
        who = parse(text)
    except IdentityError:
        user, _, rest = text.partition(" (")
        return {"user": user, "door": rest.rstrip(")").split(" ")[0] or LOCAL, "key": "",
                "source": ""}  # fmt: skip
    return {"user": who.user, "door": who.door, "key": who.key, "source": who.source}


def describe(text: str) -> str:
    """An audit text for a person to read: "alice · ssh · key SHA256:... · from 127.0.0.1:5"."""
    fields = actor_fields(text)
    parts = [fields["user"], fields["door"]]
    if fields["key"]:
        parts.append(f"key {fields['key']}")
    if fields["source"]:
        parts.append(f"from {fields['source']}")
    return " · ".join(parts)


def person(text: str) -> str:
    """The user of an audit text ("alice (ssh SHA256:... from ...)" is alice)."""
    return text.partition(" (")[0]


def local_actor() -> Actor:
    """The OS account this process runs as (its real uid), with its Unix groups."""
    uid = os.getuid()
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        raise IdentityError(f"uid {uid} has no account in the password database") from None
    return Actor(account.pw_name, LOCAL, groups=unix_groups(account.pw_name, account.pw_gid))


def unix_groups(user: str, gid: int) -> tuple[str, ...]:
    """The names of the groups a user belongs to (primary first)."""
    names: list[str] = []
    for group_id in os.getgrouplist(user, gid):
        try:
            name = grp.getgrgid(group_id).gr_name
        except KeyError:
            continue
        if name not in names:
            names.append(name)
    return tuple(names)


# The actor a trusted door handed this process (a session's console), set once before the
# console's main runs; None in every process a person started themselves.
_session_actor: Actor | None = None


def enter_session(actor: Actor) -> None:
    """Called by a door in the session process it forked, before the console runs."""
    global _session_actor
    if _session_actor is not None and _session_actor != actor:
        raise IdentityError("this process already acts for someone else")
    _session_actor = actor


def current_actor() -> Actor:
    """Who this process acts for: the person a door handed it, else its OS account."""
    return _session_actor if _session_actor is not None else local_actor()


def in_session() -> bool:
    """Whether a door handed this process its actor (an SSH or web session's console)."""
    return _session_actor is not None


# The actor a service is serving right now (one request, one task: console.servers.runner_door).
_serving: ContextVar[Actor | None] = ContextVar("serving", default=None)


def acting_for(actor: Actor) -> AbstractContextManager[None]:
    """While serving one request for `actor`: their groups are known (see known_groups)."""
    return setting(_serving, actor)


def known_groups(text: str) -> tuple[str, ...] | None:
    """The groups of the actor an audit text names, when this process knows them: the one it
    is serving, or the one it acts for; None for anyone else."""
    for known in (_serving.get(), _session_actor):
        if known is not None and str(known) == text:
            return known.groups
    return None
