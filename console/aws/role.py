"""Assumed-role credentials that name the person: SourceIdentity, session name, ExternalId, MFA."""

from __future__ import annotations

import os
import pwd
import re
import threading
from collections.abc import Callable
from typing import Any

import botocore.config
import botocore.session
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)

from console.config import ClusterConfig
from console.errors import AwsError

# Asks a person for the current code of an MFA device; given the prompt text.
MfaPrompt = Callable[[str], str]

SESSION_PREFIX = "deploy-console-"
# What STS accepts in RoleSessionName and SourceIdentity: [\w+=,.@-], 2 to 64 characters.
_NOT_ALLOWED = re.compile(r"[^\w+=,.@-]", re.ASCII)
_MAX_LENGTH = 64


def process_user() -> str:
    """The OS account this process runs as (from its uid, never from the environment)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def _sanitised(text: str) -> str:
    return _NOT_ALLOWED.sub("-", text)[:_MAX_LENGTH]


def role_session_name(user: str) -> str:
    """deploy-console-<user>, in the characters and length STS allows."""
    return _sanitised(SESSION_PREFIX + user)


def source_identity(user: str) -> str:
    """The user as AssumeRole's SourceIdentity: at least 2 characters (a 1-letter user "a"
    is "a-"); the reserved prefix "aws:" cannot occur, ":" is not kept."""
    identity = _sanitised(user)
    return identity if len(identity) >= 2 else (identity + "--")[:2]


class _AssumedRole(CredentialProvider):  # type: ignore[misc]
    """The one provider of a session whose every client acts in the assumed role."""

    METHOD = "assume-role"
    CANONICAL_NAME = "custom-deploy-console-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._assumed = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._assumed


def assume_role_request(cluster: ClusterConfig, user: str) -> dict[str, Any]:
    """The AssumeRole arguments besides RoleArn (and TokenCode, asked for on each fetch)."""
    request: dict[str, Any] = {
        "RoleSessionName": role_session_name(user),
        "SourceIdentity": source_identity(user),
    }
    if cluster.external_id:
        request["ExternalId"] = cluster.external_id
    if cluster.mfa_serial:
        request["SerialNumber"] = cluster.mfa_serial
    return request


class RoleSessions:
    """The assumed-role credentials of one console process, shared by its gateways: one role
    session per role and user, whatever the region (a person types an MFA code once, not once
    per region), refreshed by botocore before it expires.

    `mfa_prompt` asks a person at a terminal for a code; without it, a role with mfa_serial is
    refused, since nobody could type the code (the runner, sessions, pipes).
    """

    def __init__(self, mfa_prompt: MfaPrompt | None = None) -> None:
        self.mfa_prompt = mfa_prompt
        self._lock = threading.Lock()
        self._made: dict[tuple[str | None, ...], DeferredRefreshableCredentials] = {}

    def use(
        self,
        core: botocore.session.Session,
        source: botocore.session.Session,
        cluster: ClusterConfig,
        user: str,
        client_config: botocore.config.Config,
    ) -> None:
        """Make every client of `core` act in the cluster's role as `user`.

        `source` holds the credentials that may assume the role. The role is assumed on the
        first call, then again before the credentials expire (asking for a new MFA code).
        """
        assert cluster.role_arn is not None
        key = (
            cluster.endpoint_url,
            cluster.profile,
            cluster.role_arn,
            cluster.external_id,
            cluster.mfa_serial,
            user,
        )
        with self._lock:
            if key not in self._made:
                self._made[key] = self._assume(source, cluster, user, client_config)
            credentials = self._made[key]
        provider = _AssumedRole(credentials)
        core.register_component("credential_provider", CredentialResolver([provider]))

    def _assume(
        self,
        source: botocore.session.Session,
        cluster: ClusterConfig,
        user: str,
        client_config: botocore.config.Config,
    ) -> DeferredRefreshableCredentials:
        assert cluster.role_arn is not None
        if cluster.mfa_serial and self.mfa_prompt is None:
            # Not named after the cluster: clusters of one account and region share it.
            raise AwsError(
                f"assuming {cluster.role_arn} needs an MFA code (mfa_serial) and no person is "
                f"at a terminal to type it; the runner, sessions and pipes have none: remove "
                f"mfa_serial or run the command at a terminal"
            )
        source_credentials = source.get_credentials()
        if source_credentials is None:
            raise AwsError(
                f"cluster {cluster.name}: no AWS credentials to assume {cluster.role_arn}"
            )

        def sts_client(service: str, **kwargs: Any) -> Any:
            # The cluster's endpoint (a VPC endpoint, the embedded world) serves STS too.
            if cluster.endpoint_url:
                kwargs["endpoint_url"] = cluster.endpoint_url
            return source.create_client(
                service, region_name=cluster.region, config=client_config, **kwargs
            )

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts_client,
            source_credentials=source_credentials,
            role_arn=cluster.role_arn,
            extra_args=assume_role_request(cluster, user),
            mfa_prompter=self.mfa_prompt,
        )
        return DeferredRefreshableCredentials(
            method="assume-role", refresh_using=fetcher.fetch_credentials
        )
