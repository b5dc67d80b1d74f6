"""The metrics' HTTP endpoint: prometheus_client's, in a thread, on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import start_http_server

from console.errors import ConsoleError
from console.metrics.address import MetricsAddress
from console.metrics.current import install
from console.metrics.registry import Metrics


class MetricsError(ConsoleError):
    """The metrics endpoint could not listen."""


@contextmanager
def serving_metrics(address: MetricsAddress) -> Iterator[tuple[Metrics, MetricsAddress]]:
    """Serve a new Metrics at http://address/metrics (port 0: any free port; the bound address
    is yielded) in a thread, installed as the process's while the block runs."""
    metrics = Metrics()
    try:
        server, thread = start_http_server(address.port, address.host, metrics.registry)
    except OSError as error:
        raise MetricsError(f"cannot serve metrics on {address}: {error.strerror}") from None
    bound = MetricsAddress(address.host, int(server.server_address[1]))
    install(metrics)
    try:
        yield metrics, bound
    finally:
        install(None)
        _shut(server, thread)


def _shut(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
