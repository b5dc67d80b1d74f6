"""A loopback HTTP receiver that records the webhook requests it gets: answers 500 (or stalls)
while told to, then 200."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    arrived: float = field(default_factory=time.time)  # the wall clock, as audit rows'


@dataclass
class Receiver:
    """Records every request; `fail` requests get 500 first, `stall` ones a slow answer."""

    fail: int = 0
    stall: float = 0.0
    down: bool = False  # answer 500 to everything while true
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def delivered(self) -> list[Received]:
        """Requests answered 200."""
        return [r for r in self.requests if r.headers.get("X-Answered") == "200"]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        record = Received(request.path_qs, headers, json.loads(raw))
        self.requests.append(record)
        if self.stall:
            stall, self.stall = self.stall, 0.0
            await asyncio.sleep(stall)
        if self.down or self.fail > 0:
            self.fail -= 1
            headers["X-Answered"] = "500"
            return web.Response(status=500, text="receiver says no")
        headers["X-Answered"] = "200"
        return web.Response(status=200, text="ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
