"""A loopback TCP proxy in front of an endpoint that a test can make stop answering, and restore.

Blackholed, it still accepts connections and swallows every byte both ways, as a dead load
balancer or a dropped route does: the client waits on its own timeouts. Restored, it closes
every connection that lived through the blackhole (their bytes were lost) and relays again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class BlackholeProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._holed = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, name="blackhole proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def blackhole(self) -> None:
        self._holed = True

    def restore(self) -> None:
        done = threading.Event()

        def close_all() -> None:
            self._holed = False
            for writer in list(self._writers):
                writer.close()
            done.set()

        self._loop.call_soon_threadsafe(close_all)
        done.wait(timeout=5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self._holed:  # accept, never answer
                while await reader.read(65536):
                    pass
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pump(reader, upstream_writer), self._pump(upstream_reader, writer)
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self._holed:
                    continue  # swallowed: the other side waits for an answer that never comes
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def __enter__(self) -> BlackholeProxy:
        self._thread.start()
        self._ready.wait(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        self.restore()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@contextlib.contextmanager
def blackhole_proxy(endpoint_url: str) -> Iterator[BlackholeProxy]:
    host, _, port = endpoint_url.removeprefix("http://").rstrip("/").partition(":")
    with BlackholeProxy(host, int(port)) as proxy:
        yield proxy
