"""How listings name a queue entry of kind "stack" (light: the command line imports it)."""

from __future__ import annotations


def entry_label(kind: str, release: str) -> str:
    """What a queue entry runs, as listings show it: a stack change says so, not a release."""
    return f"stack change {release}" if kind == "stack" else release
