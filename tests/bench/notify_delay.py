"""Notification delay: from a deploy's end (its `deploy.finished` audit row, which writes the
outbox row in the same transaction) to the webhook receiver holding the request, with a real
`deploy-console runner` process serving the store.

    .venv/bin/python -m tests.bench.notify_delay [--events 60]

Deploy ends are written by another process (a console or the `deploy` command), which the
runner sees on its next look at the outbox (the slow path: a deploy that ends in the runner
itself wakes its delivery at once). Prints the median and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from console.servers.runner_service import runner_serves
from console.store import DeployRecord, Store
from tests.console.notify.receiver import Receiver
from tests.waiting import await_until

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
[[clusters]]
name = "prod1"
region = "us-east-1"

[notify.channels.ops]
type = "webhook"
url = "{url}/deploys"

[[notify.routes]]
channels = ["ops"]
events = ["succeeded", "failed"]
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def runner(config: Path, store: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "screens.main", "runner", "--config", str(config),
            "--store", str(store)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def arrival_delays(receiver: Receiver, ended: dict[str, float]) -> list[float]:
    """Milliseconds from each deploy's end to its request's arrival."""
    return [
        (arrived - ended[deploy_id]) * 1000
        for deploy_id, arrived in receiver_arrivals(receiver).items()
        if deploy_id in ended and deploy_id != "d-warm-up"
    ]


def receiver_arrivals(receiver: Receiver) -> dict[str, float]:
    return {r.body["deploy_id"]: r.arrived for r in receiver.requests}


async def external_ends(events: int) -> list[float]:
    receiver = await Receiver().start()
    with tempfile.TemporaryDirectory() as folder:
        config, store = Path(folder) / "bench.toml", Path(folder) / "store.db"
        config.write_text(CONFIG.format(url=receiver.url))
        ended: dict[str, float] = {}
        async with await Store.open(store) as opened:
            process = runner(config, store)
            try:
                # The runner's start (imports, store) is not measured: one event first.
                await await_until(lambda: runner_serves(store), "the runner", 60.0)
                rng = random.Random(7)
                for n in range(-1, events):
                    deploy_id = f"d-bench-{n:04d}" if n >= 0 else "d-warm-up"
                    record = DeployRecord(
                        id=deploy_id, project="storefront", cluster="prod1", release="1.0",
                        actor="bench", state="running", ticket=f"CHG-{n}",
                    )  # fmt: skip
                    await opened.create_deploy(record)
                    audit = {"action": "deploy.finished", "actor": "bench", "cluster": "prod1",
                             "project": "storefront", "deploy_id": deploy_id,
                             "outcome": "succeeded"}  # fmt: skip
                    await opened.set_deploy_state(deploy_id, "succeeded", audit=audit)
                    ended[deploy_id] = time.time()
                    await asyncio.sleep(rng.uniform(0.05, 0.6))
                    if n < 0:
                        await await_until(lambda: receiver.requests, "the first one", 60.0)
                await await_until(
                    lambda: len(receiver.requests) > events, "every notification", 60.0
                )
            finally:
                process.terminate()
                process.wait()
    await receiver.stop()
    return arrival_delays(receiver, ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60)
    args = parser.parse_args()
    delays = asyncio.run(external_ends(args.events))
    print(
        json.dumps(
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "events": len(delays),
                "delay_ms_median": round(statistics.median(delays), 1),
                "delay_ms_p95": round(percentile(delays, 0.95), 1),
                "delay_ms_max": round(max(delays), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
