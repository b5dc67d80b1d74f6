"""The console's metrics in a registry of their own, and the one a serving process installed."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

# No `_created` series (the time each counter was made): half the scrape, no use on a dashboard.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Deploys take minutes (a bake longer); steps seconds to minutes.
DEPLOY_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
STEP_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 14400, 86400)
REFRESH_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
DOORS = ("ssh", "web", "local")


class Metrics:
    """Every metric of one process, in a CollectorRegistry it owns (never prometheus_client's
    global one: two in one process, as in tests, never see each other's counts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.deploys = Counter(
            "deploy_console_deploys",
            "Deploys that ended, by cluster and outcome (succeeded, failed, rolled_back, ...)",
            ["cluster", "outcome"],
            registry=r,
        )
        self.deploy_seconds = Histogram(
            "deploy_console_deploy_duration_seconds",
            "How long deploys ran, from start to end, by cluster and outcome",
            ["cluster", "outcome"],
            buckets=DEPLOY_BUCKETS,
            registry=r,
        )
        self.step_seconds = Histogram(
            "deploy_console_step_duration_seconds",
            "How long each deploy step ran, by step and how it ended",
            ["step", "state"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "deploy_console_queue_depth",
            "Deploys in the queue: waiting (queued) or running",
            ["state"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "deploy_console_queue_wait_seconds",
            "Time from queued to started, by cluster",
            ["cluster"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.aws_calls = Counter(
            "deploy_console_aws_calls",
            "AWS API operations called (retries not counted), by service and operation",
            ["service", "operation"],
            registry=r,
        )
        self.aws_errors = Counter(
            "deploy_console_aws_errors",
            "AWS API operations that ended in an error, by service, operation and error code",
            ["service", "operation", "code"],
            registry=r,
        )
        self.refresh_seconds = Histogram(
            "deploy_console_fleet_refresh_duration_seconds",
            "How long a fleet refresh (one poll of AWS for every cluster) took",
            buckets=REFRESH_BUCKETS,
            registry=r,
        )
        self.sessions = Gauge(
            "deploy_console_sessions",
            "Sessions open now, by door (ssh, web; local: requests on the runner's socket)",
            ["door"],
            registry=r,
        )
        # Labelled, so that no sample shows until the store has anchored at least once.
        self.anchor_age = Gauge(
            "deploy_console_audit_anchor_age_seconds",
            "Seconds since the store last anchored its audit chain outside, by anchor location",
            ["location"],
            registry=r,
        )

    def count_sessions(self, door: str, count: Callable[[], int]) -> None:
        """Report `count()` (read at each scrape) as the sessions open through `door`."""
        self.sessions.labels(door=door).set_function(lambda: float(count()))

    def aws_call(self, service: str, operation: str) -> None:
        self.aws_calls.labels(service=service, operation=operation).inc()

    def aws_error(self, service: str, operation: str, code: str) -> None:
        self.aws_errors.labels(service=service, operation=operation, code=code).inc()
