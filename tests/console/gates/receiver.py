"""A loopback HTTP server that records each request and answers as a test says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Receiver:
    """Answers `status` with `body` (after `delay` seconds); keeps every request's path+query."""

    status: int = 200
    body: str = "approved\n"
    delay: float = 0.0
    seen: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.rel_url))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text=self.body)


@asynccontextmanager
async def receiver(**answer: object) -> AsyncIterator[Receiver]:
    """A Receiver serving on 127.0.0.1 (a port of its own) until the block ends."""
    found = Receiver(**answer)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_get("/{tail:.*}", found.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        await runner.cleanup()
