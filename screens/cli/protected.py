"""A protected cluster's confirmation at the command line: its name typed, or --yes for CI."""

from __future__ import annotations

import sys

from console.config import Config
from console.errors import DeployError


def confirm_protected(
    config: Config, cluster: str, yes: bool, *, flag: str, prompt: str, nothing: str
) -> None:
    """Nothing for an unprotected cluster or --yes; else the typed name, or DeployError (exit
    2): `flag` ends "pass --yes to ...", `prompt` ends "Type its name to ...", `nothing`
    follows a mismatch ("nothing deployed")."""
    if not config.cluster(cluster).protected or yes:
        return
    if not sys.stdin.isatty():
        raise DeployError(f"cluster {cluster} is protected: pass --yes to {flag}")
    typed = input(f"{cluster} is protected. Type its name to {prompt}: ").strip()
    if typed != cluster:
        raise DeployError(f"confirmation {typed!r} does not match {cluster!r}: {nothing}")
