"""Change tickets per cluster: the `ticket = { required, pattern, check }` setting and its check."""

from __future__ import annotations

import re
from dataclasses import dataclass

from console.config.gates import DEFAULT_TIMEOUT, ProbeSettings, parse_probe, parse_timeout
from console.config.reader import Table

__all__ = ["MAX_TICKET_LENGTH", "TicketSettings", "parse_ticket"]

# Longer than any tracker's key; past it a value is a paste gone wrong.
MAX_TICKET_LENGTH = 128
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class TicketSettings:
    """Whether a deploy to the cluster needs a change ticket, and the form one must have."""

    required: bool = False
    pattern: str | None = None
    # Asked before a deploy with a ticket is queued (an issue tracker's "change approved").
    check: ProbeSettings | None = None

    def problem(self, ticket: str | None, cluster: str) -> str | None:
        """Why `ticket` cannot go with a deploy to `cluster` (one line), or None when it can."""
        if not ticket:
            return f"cluster {cluster} needs a change ticket" if self.required else None
        if len(ticket) > MAX_TICKET_LENGTH or not _PRINTABLE.match(ticket):
            return f"ticket must be 1-{MAX_TICKET_LENGTH} printable characters without spaces"
        if self.pattern is not None and not re.search(self.pattern, ticket):
            return f"ticket {ticket!r} does not match {self.pattern!r} (cluster {cluster})"
        return None


def parse_ticket(table: Table) -> TicketSettings:
    """A cluster's `ticket` table; a pattern that is not a regular expression is refused with
    its file and line."""
    required = table.boolean("required", False)
    pattern: str | None = table.string("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            table.fail(f"is not a regular expression ({error})", "pattern")
    # `timeout` beside `check` (or inside it) bounds the check.
    timeout = parse_timeout(table, "timeout", DEFAULT_TIMEOUT)
    check_table = table.table("check")
    if check_table is None and "timeout" in table.data:
        table.fail(
            "bounds the ticket's check: set check = { url = ... } or { command = [...] }", "timeout"
        )
    check = parse_probe(check_table, timeout) if check_table is not None else None
    table.done()
    return TicketSettings(required=required, pattern=pattern, check=check)
