"""`--metrics PORT|HOST:PORT` of `runner`, `sshd` and `web`: their opt-in Prometheus endpoint."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from console.metrics.address import MetricsAddress, MetricsAddressError, parse_address


def _address(text: str) -> MetricsAddress:
    try:
        return parse_address(text)
    except MetricsAddressError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_metrics_option(parser: argparse.ArgumentParser, key: str) -> None:
    parser.add_argument(
        "--metrics",
        type=_address,
        metavar="PORT|HOST:PORT",
        help=f"serve Prometheus metrics at http://HOST:PORT/metrics, loopback only (default: "
        f"config [metrics] {key}; none unless asked)",
    )


@contextmanager
def metrics_served(configured: str | None, args: argparse.Namespace) -> Iterator[None]:
    """Serve the process's metrics while the block runs, when `--metrics` or the config's
    [metrics] key asks (its line on stdout says where); else nothing listens."""
    address: MetricsAddress | None = getattr(args, "metrics", None)
    if address is None and configured is not None:
        address = parse_address(configured)  # checked when the config was read
    if address is None:
        yield
        return
    from console.metrics.serve import serving_metrics

    with serving_metrics(address) as (_, bound):
        print(f"metrics on http://{bound}/metrics", flush=True)
        yield
