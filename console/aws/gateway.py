"""boto3 clients for one account+region, called from worker threads, errors made readable."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlparse

import botocore.config
import botocore.exceptions
import botocore.parsers
import botocore.session

from console.aws import models, retries
from console.aws.role import RoleSessions, process_user
from console.aws.waits import call_deadline
from console.config import ClusterConfig
from console.errors import AwsError, AwsNoAnswer
from console.metrics.aws import count_call, count_outcomes

T = TypeVar("T")

# Where the retry settings come from, and the timeouts, live in console.aws.retries.
MAX_CONCURRENT_CALLS = retries.MAX_CONCURRENT_CALLS
# (dns) Services AWS serves from one region whatever the cluster's: their clients use it.
GLOBAL_SERVICES = {"route53": "us-east-1"}


def is_loopback_endpoint(endpoint_url: str | None) -> bool:
    if not endpoint_url:
        return False
    host = urlparse(endpoint_url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


# Service models are big JSON files: one loader shared by every session parses each once
# (measured: 3 clients in 0.39 s with a loader of their own, 0.05 s with the shared one);
# the fleet's read clients get models cut to their calls (console/aws/models.py). Sessions
# are botocore's own: boto3 adds nothing these clients use, and importing it (s3transfer
# with it) cost a cold `status` 0.1 s.
def _core_session(cluster: ClusterConfig) -> botocore.session.Session:
    core = botocore.session.Session()
    core.register_component("data_loader", models.shared_loader())
    core.set_config_variable("region", cluster.region)
    if is_loopback_endpoint(cluster.endpoint_url):
        # The embedded world accepts any key; never let the credential chain reach for
        # instance metadata (a non-loopback address) or a person's real keys.
        core.set_credentials("testing", "testing")
    elif cluster.profile:
        # A missing profile raises ProfileNotFound here or at client creation: AwsGateway
        # turns it into one line either way.
        core.set_config_variable("profile", cluster.profile)
    return core


def _session(
    cluster: ClusterConfig, user: str, roles: RoleSessions
) -> tuple[botocore.session.Session, retries.RetrySettings]:
    """The cluster's credentials (with role_arn, the role assumed as `user`, SourceIdentity)
    and the retry settings of its profile and environment."""
    source = _core_session(cluster)
    settings = retries.retry_settings(source)
    if not cluster.role_arn:
        return source, settings
    core = botocore.session.Session()
    core.register_component("data_loader", models.shared_loader())
    core.set_config_variable("region", cluster.region)
    roles.use(core, source, cluster, user, settings.config())
    return core, settings


def describe_error(error: BaseException) -> str:
    """One line for a person; never includes credentials (botocore never puts them in errors)."""
    if isinstance(error, botocore.exceptions.ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "Error")
        message = details.get("Message", "") or str(error)
        return f"{code}: {message}".strip()
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        return f"cannot reach {error.kwargs.get('endpoint_url', 'the AWS endpoint')}"
    if isinstance(error, botocore.exceptions.ConnectTimeoutError):
        return f"timed out connecting to {error.kwargs.get('endpoint_url', 'the AWS endpoint')}"
    if isinstance(error, botocore.exceptions.ReadTimeoutError):
        return f"timed out waiting for {error.kwargs.get('endpoint_url', 'the AWS endpoint')}"
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials found"
    if isinstance(error, botocore.parsers.ResponseParserError):
        return "the endpoint answered something that is not an AWS response"
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, AwsError):
        return error.message
    return f"{type(error).__name__}: {error}".splitlines()[0]


class AwsGateway:
    """The AWS calls the console makes for one account+region; each runs in a worker thread."""

    def __init__(
        self,
        cluster: ClusterConfig,
        executor: ThreadPoolExecutor,
        on_call: Callable[[str], None] | None = None,
        *,
        user: str | None = None,
        roles: RoleSessions | None = None,
    ) -> None:
        """`user` is who the calls are for (the role's SourceIdentity): by default the OS
        account of this process. `roles` shares role sessions between gateways and holds the
        MFA prompt, if a person is at a terminal."""
        self.label = cluster.name
        self.user = user if user is not None else process_user()
        self.endpoint_url = cluster.endpoint_url
        self.region = cluster.region
        self._executor = executor
        self._on_call = on_call
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        kwargs: dict[str, Any] = {"region_name": cluster.region}
        if cluster.endpoint_url:
            kwargs["endpoint_url"] = cluster.endpoint_url
        self._client_kwargs = kwargs
        # Clients only some commands use (ssm for deploys, s3 for the audit anchor), and
        # clients for calls made during a wait, per service and bounded settings.
        self._lazy_clients: dict[str, Any] = {}
        self._bounded_clients: dict[tuple[str, int, int, int], Any] = {}
        self._clients_lock = threading.Lock()
        try:
            session, self.retries = _session(
                cluster, self.user, roles if roles is not None else RoleSessions()
            )
            self._session = session
            self._retry_config = self.retries.config()
            kwargs["config"] = self._retry_config
            # The fleet's read clients, on cut models; the full ones are made on first use.
            with models.reading():
                self.ec2 = session.create_client("ec2", **kwargs)
                self.elb = session.create_client("elb", **kwargs)
                self.elbv2 = session.create_client("elbv2", **kwargs)
        except botocore.exceptions.ProfileNotFound:
            raise AwsError(
                f"cluster {cluster.name}: AWS profile {cluster.profile!r} not found"
            ) from None
        except botocore.exceptions.BotoCoreError as error:
            raise AwsError(f"cluster {cluster.name}: {describe_error(error)}") from None
        for client in (self.ec2, self.elb, self.elbv2):
            # Counts API operations, retries excluded: what "calls made" means to a person.
            client.meta.events.register("before-call", self._count_call)
            count_outcomes(client)  # errors, for the process's metrics (console/metrics)

    def _client(self, service: str, operation: str = "") -> Any:
        """The client for a call made now: one whose timeouts and retries end by the
        deadline of the wait that makes it (console.aws.waits), if any. The fleet's reads
        use the read clients; any other call a client on the service's full model."""
        at = call_deadline()
        if at is not None:
            return self._bounded_client(service, at - time.monotonic())
        if service in models.READ_OPERATIONS and models.read_operation(service, operation):
            if service in GLOBAL_SERVICES:
                return self._global_read_client(service)
            return {"ec2": self.ec2, "elb": self.elb, "elbv2": self.elbv2}[service]
        # Deploys (ssm for secrets, ec2 and the load balancers' writes) and the audit
        # anchor (s3): made on first use, not with every gateway.
        with self._clients_lock:
            if service not in self._lazy_clients:
                self._lazy_clients[service] = self._new_client(service, self._retry_config)
        return self._lazy_clients[service]

    def _global_read_client(self, service: str) -> Any:
        """(dns) A global service's read client (route53), on its cut model, made on first use
        in the region AWS serves it from."""
        key = f"{service}:read"
        with self._clients_lock:
            if key not in self._lazy_clients:
                with models.reading():
                    self._lazy_clients[key] = self._new_client(service, self._retry_config)
        return self._lazy_clients[key]

    def _bounded_client(self, service: str, left: float) -> Any:
        connect, read, attempts = retries.bounded_settings(left, self.retries.attempts)
        key = (service, connect, read, attempts)
        with self._clients_lock:
            if key not in self._bounded_clients:
                config = self._retry_config.merge(
                    botocore.config.Config(
                        connect_timeout=connect,
                        read_timeout=read,
                        retries={"mode": self.retries.mode, "total_max_attempts": attempts},
                    )
                )
                self._bounded_clients[key] = self._new_client(service, config)
            return self._bounded_clients[key]

    def _new_client(self, service: str, config: botocore.config.Config) -> Any:
        kwargs = {**self._client_kwargs, "config": config}
        if service in GLOBAL_SERVICES:
            kwargs["region_name"] = GLOBAL_SERVICES[service]
        client = self._session.create_client(service, **kwargs)
        client.meta.events.register("before-call", self._count_call)
        count_outcomes(client)
        return client

    async def call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One API call (e.g. `call("ec2", "run_instances", ...)`) in a worker thread."""

        def run() -> dict[str, Any]:
            response: dict[str, Any] = getattr(self._client(service, operation), operation)(
                **kwargs
            )
            return response

        return await self._run(run)

    async def s3_object(
        self, bucket: str, key: str, limit: int = 1 << 20, version_id: str | None = None
    ) -> bytes | None:
        """The first `limit` bytes of an S3 object (of one version of it), or None when the
        bucket has no such key."""
        version = {} if version_id is None else {"VersionId": version_id}

        def call() -> bytes | None:
            try:
                response = self._client("s3", "get_object").get_object(
                    Bucket=bucket, Key=key, **version
                )
            except botocore.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchKey":
                    return None
                raise
            with response["Body"] as body:
                data: bytes = body.read(limit)
            return data

        return await self._run(call)

    async def paginate(
        self, service: str, operation: str, key: str, page_size: int, **kwargs: Any
    ) -> list[Any]:
        return await self._run(
            lambda: self._paginate(
                self._client(service, operation), operation, key, page_size, **kwargs
            )
        )

    def _count_call(self, model: Any, **_: Any) -> None:
        with self._calls_lock:
            self.calls[model.name] += 1
        if self._on_call is not None:
            self._on_call(model.name)
        count_call(model)

    async def _run(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        at = call_deadline()
        try:
            if at is None:
                return await loop.run_in_executor(self._executor, function)
            left = at - time.monotonic()
            if left <= 0:
                raise AwsNoAnswer("its deadline passed before the call")
            # The thread sees the deadline (its client's timeouts come from it), and the wait
            # ends at the deadline even if the thread is stuck: it finishes later on its own.
            call = loop.run_in_executor(self._executor, contextvars.copy_context().run, function)
            try:
                return await asyncio.wait_for(call, left)
            except TimeoutError:
                raise AwsNoAnswer(f"no answer in {left:.0f} s") from None
        except AwsError:
            raise
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
            raise AwsNoAnswer(describe_error(error)) from None
        except Exception as error:
            # Whatever breaks in a call (a refused connection, a garbled answer) is this
            # account's problem to show, never a crash of the refresh.
            raise AwsError(describe_error(error)) from None

    def _paginate(
        self, client: Any, operation: str, key: str, page_size: int, **kwargs: Any
    ) -> list[Any]:
        """Every page, each as large as the API allows: pages are calls too."""
        items: list[Any] = []
        # A read's paginator comes from the cut paginator model (loaded on first use).
        cut = (
            models.reading()
            if models.read_operation(client.meta.service_model.service_name, operation)
            else contextlib.nullcontext()
        )
        with cut:
            paginator = client.get_paginator(operation)
        for page in paginator.paginate(PaginationConfig={"PageSize": page_size}, **kwargs):
            items.extend(page.get(key, []))
        return items

    async def describe_instances(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def call() -> list[dict[str, Any]]:
            reservations = self._paginate(
                self._client("ec2", "describe_instances"),
                "describe_instances",
                "Reservations",
                1000,
                Filters=filters,
            )
            return [
                instance for reservation in reservations for instance in reservation["Instances"]
            ]

        return await self._run(call)

    async def classic_load_balancers(self) -> list[dict[str, Any]]:
        return await self._run(
            lambda: self._paginate(
                self._client("elb", "describe_load_balancers"),
                "describe_load_balancers",
                "LoadBalancerDescriptions",
                400,
            )
        )

    async def target_groups(self) -> list[dict[str, Any]]:
        return await self._run(
            lambda: self._paginate(
                self._client("elbv2", "describe_target_groups"),
                "describe_target_groups",
                "TargetGroups",
                400,
            )
        )

    async def load_balancers(self) -> list[dict[str, Any]]:
        """(dns) Every ALB and NLB (their DNS names: a record points at one)."""
        return await self.paginate("elbv2", "describe_load_balancers", "LoadBalancers", 400)

    async def classic_health(self, name: str) -> list[dict[str, Any]]:
        answer = await self.call("elb", "describe_instance_health", LoadBalancerName=name)
        states: list[dict[str, Any]] = answer["InstanceStates"]
        return states

    async def target_health(self, arn: str) -> list[dict[str, Any]]:
        answer = await self.call("elbv2", "describe_target_health", TargetGroupArn=arn)
        descriptions: list[dict[str, Any]] = answer["TargetHealthDescriptions"]
        return descriptions

    async def classic_attributes(self, name: str) -> dict[str, Any]:
        answer = await self.call("elb", "describe_load_balancer_attributes", LoadBalancerName=name)
        attributes: dict[str, Any] = answer["LoadBalancerAttributes"]
        return attributes

    async def target_group_attributes(self, arn: str) -> dict[str, str]:
        answer = await self.call("elbv2", "describe_target_group_attributes", TargetGroupArn=arn)
        return {item["Key"]: item["Value"] for item in answer["Attributes"]}
