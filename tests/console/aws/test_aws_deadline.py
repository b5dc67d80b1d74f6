"""A call made during a wait ends by the wait's deadline, whatever botocore's retry settings.

The endpoint is a real loopback socket that accepts and never answers (a blackholed proxy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from console.aws.gateway import AwsGateway
from console.aws.retries import bounded_settings
from console.aws.waits import deadline
from console.config import ClusterConfig
from console.errors import AwsNoAnswer
from tests.blackhole import BlackholeProxy, blackhole_proxy


@pytest.fixture
def silent_endpoint() -> Iterator[BlackholeProxy]:
    with blackhole_proxy("http://127.0.0.1:9") as proxy:
        proxy.blackhole()
        yield proxy


@pytest.mark.parametrize(
    ("left", "settings"),
    [
        (600, (3, 30, 4)),  # plenty of time: the usual settings (4 attempts of 3 + 30 s)
        (45, (3, 30, 1)),  # one 30 s attempt fits, a second would not
        (16, (3, 10, 1)),
        (4, (3, 3, 1)),
        (0.2, (1, 1, 1)),  # the wait itself stops the call at its deadline
    ],
)
def test_the_time_left_sets_timeouts_and_attempts(
    left: float, settings: tuple[int, int, int]
) -> None:
    assert bounded_settings(left) == settings


async def test_a_call_during_a_wait_ends_by_its_deadline(silent_endpoint: BlackholeProxy) -> None:
    with ThreadPoolExecutor(4) as executor:
        gateway = AwsGateway(
            ClusterConfig("staging", "us-east-1", endpoint_url=silent_endpoint.url), executor
        )
        for left in (2.5, 0.5):
            began = time.monotonic()
            with pytest.raises(AwsNoAnswer), deadline(began + left):
                await gateway.target_health("arn:aws:elasticloadbalancing:tg/web")
            assert time.monotonic() - began < left + 0.5
        silent_endpoint.restore()  # closes the connections left hanging, ending their threads
