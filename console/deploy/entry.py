"""What a queue entry does, in the words the queue, history and follow show (light to import)."""

from __future__ import annotations

KIND_SCALE = "scale"
KIND_STACK = "stack"


def entry_text(kind: str, release: str) -> str:
    """ "scale to 3" for a scale, "stack change s-…" for a stack change; the release for a
    deploy (and any other kind's own text)."""
    if kind == KIND_SCALE:
        return f"scale to {release}"
    if kind == KIND_STACK:
        return f"stack change {release}"
    return release
