"""`deploy-console --version`: the installed distribution's version (importlib.metadata)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from screens import PROG

DISTRIBUTION = "deploy-console"


def installed_version() -> str:
    """The version pip or pipx installed (an editable install's too); "unknown" when the
    sources run without being installed at all."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class VersionAction(argparse.Action):
    """Prints `deploy-console X.Y.Z` and exits 0. The version is looked up only when asked
    (argparse's own version action wants it at parser build time, on every command)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the installed version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"{PROG} {installed_version()}", flush=True)  # on stdout, as argparse's own
        parser.exit()
