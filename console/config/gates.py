"""External checks in the config: a probe (`{ url }` or `{ command }`, a timeout) and [[hooks]]."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from console.config.locate import closest
from console.config.reader import Table
from console.errors import ConsoleError
from console.inputs import UNITS

__all__ = [
    "HOOK_EVENTS",
    "PLACEHOLDERS",
    "HookSettings",
    "ProbeSettings",
    "parse_hooks",
    "parse_probe",
]

# What a URL template or a command's arguments may name: {project} {cluster} {release}
# {image_id} {ticket}, and {config} (the console's config file, for its own subcommands).
PLACEHOLDERS = ("project", "cluster", "release", "image_id", "ticket", "config")
# When a hook runs: before the deploy changes anything, at any end, or at one kind of end.
HOOK_EVENTS = (
    "pre-deploy",
    "post-deploy",
    "succeeded",
    "failed",
    "rolled-back",
    "cancelled",
)
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 600.0
_TIMEOUT = re.compile(r"^(\d{1,6}(?:\.\d+)?)\s*(s|m)$")


@dataclass(frozen=True)
class ProbeSettings:
    """Ask something outside: an HTTP GET of `url` (2xx passes) or run `command` (exit 0
    passes), both templates of PLACEHOLDERS, within `timeout` seconds."""

    url: str | None = None
    command: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    @property
    def uses_image(self) -> bool:
        """Whether a template names {image_id} (the release must be resolved to fill it)."""
        return any("{image_id}" in part for part in (self.url or "", *self.command))


@dataclass(frozen=True)
class HookSettings:
    """A command run at some moments of a deploy (`on`), for some clusters and projects
    (empty: all)."""

    name: str
    on: tuple[str, ...]
    command: tuple[str, ...]
    timeout: float = DEFAULT_TIMEOUT
    clusters: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()

    def applies(self, event: str, project: str, cluster: str) -> bool:
        return (
            event in self.on
            and (not self.clusters or cluster in self.clusters)
            and (not self.projects or project in self.projects)
        )


def parse_timeout(table: Table, key: str, default: float) -> float:
    """ "5s", "2m" or a number of seconds, above 0 and at most MAX_TIMEOUT."""
    if key not in table.data:
        table.read.add(key)
        return default
    value = table.data[key]
    if isinstance(value, str):
        table.read.add(key)
        match = _TIMEOUT.match(value.strip())
        seconds = float(match[1]) * UNITS[match[2]] if match else -1.0
    else:
        seconds = table.number(key, default, minimum=0.0, maximum=MAX_TIMEOUT)
    if not 0 < seconds <= MAX_TIMEOUT:
        table.fail(
            f'must be a duration above 0 and at most {MAX_TIMEOUT:g}s ("5s", "2m"), not {value!r}',
            key,
        )
    return seconds


def parse_probe(table: Table, timeout: float = DEFAULT_TIMEOUT) -> ProbeSettings:
    """`{ url = "https://..." }` or `{ command = ["argv", ...] }`, with an optional timeout."""
    url: str | None = table.string("url")
    command = table.strings("command") if "command" in table.data else ()
    if "command" in table.data and not command:
        table.fail("must name a program (argv, no shell)", "command")
    if (url is None) == (not command):
        table.fail("needs exactly one of url or command")
    if url is not None:
        if not re.match(r"^https?://[^\s/]+", url):
            table.fail(f"must be an http(s) URL, not {url!r}", "url")
        _check_template(table, "url", url)
    for part in command:
        _check_template(table, "command", part)
    settings = ProbeSettings(
        url=url, command=command, timeout=parse_timeout(table, "timeout", timeout)
    )
    table.done()
    return settings


def parse_hooks(
    top: Table, clusters: tuple[str, ...], projects: tuple[str, ...]
) -> tuple[HookSettings, ...]:
    """The [[hooks]] entries; an unknown event, cluster or project names its line."""
    hooks: list[HookSettings] = []
    for table in top.tables("hooks"):
        on = table.strings("on", required=True)
        if not on:
            table.fail(f"must name at least one of {', '.join(HOOK_EVENTS)}", "on")
        for event in on:
            if event not in HOOK_EVENTS:
                meant = closest(event, HOOK_EVENTS)
                hint = f"did you mean {meant}?" if meant else f"one of {', '.join(HOOK_EVENTS)}"
                table.fail(f"unknown event {event!r} ({hint})", "on")
        command = table.strings("command", required=True)
        if not command:
            table.fail("must name a program (argv, no shell)", "command")
        for part in command:
            _check_template(table, "command", part)
        chosen = {"clusters": table.strings("clusters"), "projects": table.strings("projects")}
        for key, known in (("clusters", clusters), ("projects", projects)):
            for name in chosen[key]:
                if name not in known:
                    table.fail(f"unknown {key[:-1]} {name!r}", key)
        name = table.string("name", default=command[0].rsplit("/", 1)[-1])
        hooks.append(
            HookSettings(
                name=name,
                on=on,
                command=command,
                timeout=parse_timeout(table, "timeout", DEFAULT_TIMEOUT),
                clusters=chosen["clusters"],
                projects=chosen["projects"],
            )
        )
        table.done()
    return tuple(hooks)


def _check_template(table: Table, key: str, text: str) -> None:
    """A template names only PLACEHOLDERS ({{ and }} are a literal brace)."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as error:
        table.fail(f"is not a template ({error}): {text!r}", key)
        return
    for field in fields:
        if field not in PLACEHOLDERS:
            allowed = " ".join("{" + name + "}" for name in PLACEHOLDERS)
            table.fail(f"unknown placeholder {{{field}}} (known: {allowed})", key)


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with its placeholders replaced by `values` (missing ones empty)."""
    try:
        return template.format_map({name: values.get(name, "") for name in PLACEHOLDERS})
    except (KeyError, ValueError, IndexError) as error:  # checked at load; a last resort
        raise ConsoleError(f"template {template!r}: {error}") from None
