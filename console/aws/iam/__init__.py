"""Least-privilege IAM policies per role of the console, shipped with it (`iam-policy ROLE`)."""

from __future__ import annotations

from importlib import resources

from console.errors import ConsoleError

# What each document is for; the key is the ROLE of `deploy-console iam-policy ROLE`.
ROLES = {
    "poller": "reads the fleet, its load balancers and releases; changes nothing",
    "runner": "deploys: launches, tags, registers, drains, terminates; reads the secrets",
    "anchor-writer": "writes and reads the audit anchor in S3; never deletes or unlocks",
    "trust": "the trust policy of each role: AssumeRole naming the person (SourceIdentity)",
}


class UnknownRole(ConsoleError):
    """No policy document has that name."""


def policy(role: str) -> str:
    """The JSON document of `role` (a key of ROLES), as shipped."""
    if role not in ROLES:
        raise UnknownRole(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return resources.files(__package__).joinpath(f"{role}.json").read_text(encoding="utf-8")
