"""The embedded world: a moto server on 127.0.0.1 seeded with the demo fleet through boto3."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from console.config import Config, WorldConfig
from console.errors import WorldError

# moto is the [demo] extra: without it `deploy-console world` and `demo` say what to install.
try:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server
except ModuleNotFoundError as missing:
    raise WorldError(
        "the embedded world needs the demo extra: pip install 'deploy-console[demo]'"
    ) from missing

from console.world import moto_patches as world_moto
from console.world.inbox import Inbox, with_inbox
from console.world.seed import Seeder, SeedReport
from console.world.ssh import DEFAULT_ROUTES, WorldSsh, WorldSshThread

__all__ = ["SeedReport", "World"]


class _Server(ThreadedMotoServer):
    """moto's threaded server with the world's notification inbox in front of its app."""

    def __init__(self, inbox: Inbox, port: int) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.inbox = inbox

    def _server_entry(self) -> None:  # ThreadedMotoServer's, with the app wrapped
        app = with_inbox(DomainDispatcherApplication(create_backend_app), self.inbox)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class World:
    """A real AWS API endpoint on loopback, holding the fleet that `config.world` describes."""

    def __init__(self, config: Config, port: int = 0, world: WorldConfig | None = None) -> None:
        self.config = config
        self.world = world or config.world
        if self.world is None:
            raise WorldError(f"{config.source}: no [world] section to seed the embedded world from")
        self.port = port
        self._server: Any = None
        self.endpoint_url = ""
        self.report = SeedReport()
        self._clients: dict[tuple[str, str], Any] = {}
        self._boto_session: Any = None
        self._serving: world_moto.Serving | None = None
        self.ssh: WorldSsh | None = None
        self._ssh_thread: WorldSshThread | None = None
        self._root: Path | None = None
        # Webhooks to PREFIX on this port land here (console/world/inbox.py).
        self.inbox = Inbox()

    def start(self, seed: bool = True) -> str:
        """Start the server and seed it; returns the endpoint URL.

        moto keeps its state per process: a second World started with seed=False serves the
        same fleet on another port (used to take one endpoint away while another stays).
        """
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto would load hundreds of public AMIs into every region: the demo wants its own.
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        world_moto.apply()
        self._check_port_free()
        self._server = _Server(self.inbox, self.port)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = port
        self.endpoint_url = f"http://{host}:{port}"
        if not seed:
            return self.endpoint_url
        started = time.perf_counter()
        self._post("/moto-api/reset")
        assert self.world is not None
        self._post(f"/moto-api/seed?a={self.world.seed}")
        world_moto.reset()
        Seeder(self.config, self.world, self.client, self.report, self.is_broken).seed()
        # Seeded instances were in service at once; from now on a registration takes time.
        world_moto.set_registration_seconds(self.world.registration_seconds)
        world_moto.set_serving(self._serving)
        self.report.seconds = time.perf_counter() - started
        return self.endpoint_url

    def start_ssh(self, root: Path | None = None) -> dict[str, str]:
        """Start the instances' SSH side (a jump host on 127.0.0.1); returns the settings a
        config needs to reach it ([clusters.ssh]). Sandboxes live under `root` (a fresh
        temporary directory by default, removed by stop())."""
        if root is None:
            root = self._root = Path(tempfile.mkdtemp(prefix="deploy-console-world-"))
        self.ssh = WorldSsh(
            root,
            world_moto.instance_for_address,
            self._image_for_instance,
            broken=self.is_broken,
            routes=self.routes,
        )
        self._ssh_thread = WorldSshThread(self.ssh)
        self._ssh_thread.start()
        self.set_serving(self.ssh.is_serving)
        return {
            "user": "deploy",
            "key": str(self.ssh.client_key_path),
            "known_hosts": str(self.ssh.known_hosts_path),
            "jump_host": self.ssh.jump_host,
        }

    def _image_for_instance(self, instance_id: str) -> tuple[str, str] | None:
        tags = world_moto.instance_tags(instance_id)
        if tags is None:
            return None
        project = tags.get(self.config.tags.project)
        version = tags.get(self.config.tags.version)
        return (project, version) if project and version else None

    def set_serving(self, serving: world_moto.Serving | None) -> None:
        """Let `serving(instance_id, path)` decide each instance's health check of `path` (the
        load balancer's health check path; None for a TCP check): True passes, False fails,
        None has no opinion (the seeded fleet's rules: failing instances fail, the others pass
        while running). Called on every health read, in the server's threads: it must be cheap
        and thread-safe, and must not call the world's API."""
        self._serving = serving
        world_moto.set_serving(serving)

    def routes(self, project: str, version: str) -> tuple[str, ...]:
        """The HTTP paths the world's release `version` of `project` answers 200 on."""
        assert self.world is not None
        spec = self.world.projects.get(project)
        if spec is None or version not in spec.routes:
            return DEFAULT_ROUTES
        return spec.routes[version]

    def is_broken(self, project: str, version: str) -> bool:
        """Whether the world's release `version` of `project` fails its health command."""
        assert self.world is not None
        spec = self.world.projects.get(project)
        return spec is not None and version in spec.broken

    def _check_port_free(self) -> None:
        # ThreadedMotoServer binds in its thread and waits forever if that fails: try first.
        if self.port == 0:
            return
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as error:
                raise WorldError(
                    f"cannot listen on 127.0.0.1:{self.port}: {error.strerror}"
                ) from None

    def stop(self) -> None:
        if self._ssh_thread is not None:
            self._ssh_thread.stop()
            self._ssh_thread = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _post(self, path: str) -> None:
        request = urllib.request.Request(self.endpoint_url + path, method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def client(self, service: str, region: str) -> Any:
        """One client per service and region: creating one costs about 0.3 s."""
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._new_client(service, region)
        return self._clients[key]

    def _new_client(self, service: str, region: str) -> Any:
        if self._boto_session is None:
            self._boto_session = boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._boto_session.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 3}),
        )
