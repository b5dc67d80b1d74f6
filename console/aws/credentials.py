"""Which credential source a cluster's calls will use (profile, SSO, assume-role, environment
keys, instance role), told from the AWS config files and the environment alone.

Nothing is resolved: no credential is read, no endpoint is called (the instance-metadata
address is not loopback), and nothing secret is ever part of the answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import botocore.configloader
import botocore.exceptions
import botocore.session

from console.aws import retries
from console.config import ClusterConfig
from console.errors import AwsError


@dataclass(frozen=True)
class CredentialSource:
    cluster: str
    source: str  # one line: where the keys come from, then any role the console assumes
    retries: str  # the retry settings the calls use, and where they come from
    problem: str | None = None  # a setting every call would fail on (a bad max_attempts)


def _shared_credentials(core: botocore.session.Session) -> dict[str, Any]:
    path = os.path.expanduser(str(core.get_config_variable("credentials_file")))
    try:
        parsed: dict[str, Any] = botocore.configloader.raw_config_parse(path)
    except (botocore.exceptions.ConfigNotFound, botocore.exceptions.ConfigParseError):
        return {}
    return parsed


def _profile_source(core: botocore.session.Session, name: str, explicit: str) -> str:
    """What a named profile gets its keys from (its keys are never looked at, only named)."""
    profile: dict[str, Any] = core.full_config.get("profiles", {}).get(name, {})
    where = f"profile {name}{explicit}"
    if profile.get("sso_session") or profile.get("sso_start_url"):
        session = profile.get("sso_session") or profile.get("sso_start_url")
        return f"{where}: SSO ({session}; `aws sso login` first)"
    if profile.get("role_arn"):
        base = profile.get("source_profile") or profile.get("credential_source") or "?"
        return f"{where}: assume-role {profile['role_arn']} from {base}"
    if profile.get("web_identity_token_file"):
        return f"{where}: web identity (token file)"
    if profile.get("credential_process"):
        return f"{where}: credential_process"
    if name in _shared_credentials(core) or profile.get("aws_access_key_id"):
        return f"{where}: static keys (shared credentials file)"
    return f"{where}: no keys of its own (the default chain)"


def _chain_source(core: botocore.session.Session) -> str:
    """The default chain, as botocore walks it (environment first, instance role last)."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return "environment keys (AWS_ACCESS_KEY_ID)"
    if os.environ.get("AWS_PROFILE"):
        return _profile_source(core, os.environ["AWS_PROFILE"], " (AWS_PROFILE)")
    if os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)"
    if "default" in core.full_config.get("profiles", {}) or "default" in _shared_credentials(core):
        return _profile_source(core, "default", "")
    if os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or os.environ.get(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    ):
        return "container role (ECS task credentials)"
    return "instance role (EC2 instance metadata), if there is one"


def credential_source(cluster: ClusterConfig) -> CredentialSource:
    """How `cluster`'s calls will authenticate, and with which retry settings."""
    from console.aws.gateway import is_loopback_endpoint

    core = botocore.session.Session()
    if is_loopback_endpoint(cluster.endpoint_url):
        source = "the embedded world's test keys (loopback endpoint)"
    elif cluster.profile:
        if cluster.profile not in core.full_config.get("profiles", {}) and (
            cluster.profile not in _shared_credentials(core)
        ):
            # A config written for the console host, checked elsewhere: said, not failed.
            source = f"profile {cluster.profile}: not in this host's AWS config (calls fail here)"
        else:
            core.set_config_variable("profile", cluster.profile)
            source = _profile_source(core, cluster.profile, "")
    else:
        source = _chain_source(core)
    if cluster.role_arn:
        mfa = " with MFA" if cluster.mfa_serial else ""
        source += f"; then assumes {cluster.role_arn} as the person (SourceIdentity){mfa}"
    if cluster.deploy_role_arn:
        source += f"; deploys assume {cluster.deploy_role_arn}"
    try:
        settings = retries.retry_settings(core)
    except AwsError as error:  # naming the bad setting: shown, not raised
        return CredentialSource(cluster.name, source, "-", error.message)
    return CredentialSource(cluster.name, source, settings.describe())
