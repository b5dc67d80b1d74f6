"""Where a process serves its metrics: PORT or HOST:PORT, loopback only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"


class MetricsAddressError(ValueError):
    """The address is not PORT or HOST:PORT on a loopback host."""


@dataclass(frozen=True)
class MetricsAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> MetricsAddress:
    """PORT (on 127.0.0.1) or HOST:PORT ([::1]:PORT), the host a loopback address or
    localhost: metrics carry project, cluster and operation names, and are never served on a
    network interface (put a proxy with TLS and authentication in front to scrape remotely)."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, text
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise MetricsAddressError(f"must be PORT or HOST:PORT (port 0-65535), not {text!r}")
    if host == "localhost":
        host = DEFAULT_HOST
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise MetricsAddressError(
            f"metrics are served on loopback only (127.0.0.1, ::1 or localhost), not {host!r}"
        )
    return MetricsAddress(host, int(port_text))
