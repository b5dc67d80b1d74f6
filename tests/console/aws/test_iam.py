"""The IAM policies the console ships: printed by `iam-policy ROLE`, and covering every AWS call."""

from __future__ import annotations

import ast
import fnmatch
import json
import subprocess
import sys
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from console.aws.iam import ROLES
from tests.conftest import ROOT

PACKAGED = ROOT / "console" / "aws" / "iam"
DOCS = ROOT / "docs" / "iam"
POLICIES = ("poller", "runner", "anchor-writer")

# The clients the console's code calls AWS with (console/aws/gateway.py), and IAM's name for each.
CLIENT_ATTRIBUTES = {"ec2": "ec2", "elb": "elb", "elbv2": "elbv2"}
IAM_PREFIX = {
    "ec2": "ec2",
    "elb": "elasticloadbalancing",
    "elbv2": "elasticloadbalancing",
    "ssm": "ssm",
    "s3": "s3",
    "route53": "route53",
    "cloudformation": "cloudformation",
    "autoscaling": "autoscaling",
}
# Where IAM's permission is not named after the API operation (S3 keeps older names), or an
# operation needs more than its own permission (tags given to RunInstances need CreateTags).
EXTRA_OR_RENAMED = {
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:ListObjects": ["s3:ListBucket"],
    "s3:ListObjectVersions": ["s3:ListBucketVersions"],
    "s3:HeadObject": ["s3:GetObject"],
    "s3:HeadBucket": ["s3:ListBucket"],
    "s3:GetObjectLockConfiguration": ["s3:GetBucketObjectLockConfiguration"],
    "ec2:RunInstances": ["ec2:RunInstances", "ec2:CreateTags"],
}
# An argument that makes a call need one more permission.
BY_ARGUMENT = {
    ("s3:GetObject", "VersionId"): "s3:GetObjectVersion",
    ("s3:HeadObject", "VersionId"): "s3:GetObjectVersion",
    ("s3:PutObject", "ObjectLockMode"): "s3:PutObjectRetention",
    ("s3:PutObject", "ObjectLockRetainUntilDate"): "s3:PutObjectRetention",
    ("s3:PutObject", "ObjectLockLegalHoldStatus"): "s3:PutObjectLegalHold",
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def document(role: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PACKAGED / f"{role}.json").read_text())
    return loaded


def statements(role: str, effect: str) -> list[dict[str, Any]]:
    found = [s for s in document(role)["Statement"] if s["Effect"] == effect]
    for statement in found:
        if isinstance(statement["Action"], str):
            statement["Action"] = [statement["Action"]]
    return found


def actions(role: str, effect: str = "Allow") -> set[str]:
    return {a for s in statements(role, effect) for a in s["Action"]}


def _operation_names(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _constant(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _aws_call(node: ast.Call) -> tuple[str, str] | None:
    """(service, method) when `node` calls AWS in one of the ways console/ does."""
    function, arguments = node.func, node.args
    if isinstance(function, ast.Attribute | ast.Name) and arguments:
        name = function.attr if isinstance(function, ast.Attribute) else function.id
        if name == "partial":  # functools.partial(self._paginate, self.elb, "describe_...")
            function, arguments = arguments[0], arguments[1:]
    if not isinstance(function, ast.Attribute):
        return None
    constants = [_constant(a) for a in arguments[:2]]
    if function.attr in ("call", "paginate") and len(constants) == 2:
        service, operation = constants  # gateway.call("ec2", "run_instances", ...)
        return (service, operation) if service and operation else None
    if function.attr == "_call" and constants[0]:
        return "s3", constants[
            0
        ]  # S3Anchors: self._call("put_object", ...) (console/audit/anchor.py)
    if function.attr == "_paginate" and len(arguments) >= 2:
        client = arguments[
            0
        ]  # self._paginate(self.ec2 or self._client("ec2"), "describe_...", ...)
        service = CLIENT_ATTRIBUTES.get(client.attr) if isinstance(client, ast.Attribute) else None
        if (
            isinstance(client, ast.Call)
            and isinstance(client.func, ast.Attribute)
            and client.func.attr == "_client"
            and client.args
        ):
            service = _constant(client.args[0])
        return (service, constants[1]) if service and constants[1] else None
    target = function.value
    if isinstance(target, ast.Attribute) and target.attr in CLIENT_ATTRIBUTES:
        return CLIENT_ATTRIBUTES[target.attr], function.attr  # self.elb.describe_...(...)
    if (
        isinstance(target, ast.Call)
        and isinstance(target.func, ast.Attribute)
        and target.func.attr == "_client"
        and target.args
    ):
        service = _constant(target.args[0])  # self._client("s3").get_object(...)
        return (service, function.attr) if service else None
    return None


def permissions_the_code_needs() -> dict[str, set[str]]:
    """IAM action -> the files whose AWS calls need it; the embedded world is not the console."""
    needed: dict[str, set[str]] = {}
    names: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "console").rglob("*.py")):
        if path.name.startswith("world"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            found = _aws_call(node) if isinstance(node, ast.Call) else None
            if found is None or found[0] not in IAM_PREFIX:
                continue
            service, method = found
            if service not in names:
                names[service] = _operation_names(service)
            operation = names[service].get(method)
            assert operation, f"{path.name}:{node.lineno}: {service} has no {method}"
            action = f"{IAM_PREFIX[service]}:{operation}"
            wanted = list(EXTRA_OR_RENAMED.get(action, [action]))
            keywords = {k.arg for k in node.keywords}
            wanted += [e for (a, k), e in BY_ARGUMENT.items() if a == action and k in keywords]
            for permission in wanted:
                needed.setdefault(permission, set()).add(f"{path.name}:{node.lineno}")
    return needed


def allowed(action: str, patterns: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in patterns)


@pytest.mark.parametrize("role", list(ROLES))
def test_iam_policy_prints_the_shipped_document(role: str) -> None:
    result = run_cli("iam-policy", role)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (DOCS / f"{role}.json").read_text()
    assert json.loads(result.stdout)["Version"] == "2012-10-17"


def test_an_unknown_role_is_one_line_naming_the_roles() -> None:
    result = run_cli("iam-policy", "admin")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "deploy-console: error: unknown role 'admin': "
        "choose one of poller, runner, anchor-writer, trust\n"
    )


def test_without_a_role_it_lists_the_roles() -> None:
    result = run_cli("iam-policy")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(ROLES)


def test_docs_hold_the_same_documents_as_the_package() -> None:
    shipped = sorted(p.name for p in PACKAGED.glob("*.json"))
    assert shipped == sorted(f"{role}.json" for role in ROLES)
    assert sorted(p.name for p in DOCS.glob("*.json")) == shipped
    for name in shipped:
        assert (DOCS / name).read_bytes() == (PACKAGED / name).read_bytes(), name


def test_every_aws_call_of_the_console_is_allowed_by_a_policy() -> None:
    needed = permissions_the_code_needs()
    # The scan sees the calls: reads, deploys, secrets and the anchor alike.
    for action in (
        "ec2:DescribeInstances",
        "ec2:RunInstances",
        "ec2:CreateTags",
        "ec2:TerminateInstances",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
        "ssm:GetParameters",
        "s3:PutObject",
        "s3:ListBucket",
    ):
        assert action in needed, action
    granted = set().union(*(actions(role) for role in POLICIES))
    denied = set().union(*(actions(role, "Deny") for role in POLICIES))
    missing = {a: sorted(w) for a, w in needed.items() if not allowed(a, granted)}
    assert not missing, f"no policy allows {missing}"
    assert not [a for a in needed if allowed(a, denied)]


def test_the_poller_only_reads_and_the_runner_reads_what_it_reads() -> None:
    poller = actions("poller")
    assert poller and all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in poller)
    assert poller <= actions("runner")


def test_the_runners_writes_are_limited_to_the_consoles_instances() -> None:
    for statement in statements("runner", "Allow"):
        # Terminating, stopping, starting (the instances a bake keeps) and re-tagging: only
        # instances of a project and cluster; tagging otherwise only while launching.
        tagged = {
            "Null": {"aws:ResourceTag/Project": "false", "aws:ResourceTag/Environment": "false"}
        }
        acts = statement["Action"]
        if any(a in acts for a in ("ec2:TerminateInstances", "ec2:StopInstances",
                                   "ec2:StartInstances", "ec2:DeleteTags")):  # fmt: skip
            assert statement["Condition"] == tagged
        if "ec2:CreateTags" in acts:
            assert statement["Condition"] in (
                {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
                tagged,
            )
        if "iam:PassRole" in statement["Action"]:
            assert statement["Condition"]["StringEquals"] == {
                "iam:PassedToService": "ec2.amazonaws.com"
            }
    launching = [
        s
        for s in statements("runner", "Allow")
        if "ec2:RunInstances" in s["Action"] and "instance/" in str(s["Resource"])
    ]
    assert [s["Condition"]["StringEquals"] for s in launching] == [
        {"aws:RequestTag/ManagedBy": "deploy-console"}
    ]
    assert not any(a.startswith(("s3:", "sts:")) for a in actions("runner"))


def test_the_anchor_writer_may_put_but_never_delete() -> None:
    writer = actions("anchor-writer")
    assert {"s3:PutObject", "s3:PutObjectRetention", "s3:GetObjectVersion"} <= writer
    assert all(a.startswith("s3:") for a in writer)
    assert not [a for a in writer if "Delete" in a or a == "s3:BypassGovernanceRetention"]
    denied = actions("anchor-writer", "Deny")
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"):
        assert action in denied


def test_the_trust_policy_lets_the_console_name_the_person() -> None:
    (statement,) = document("trust")["Statement"]
    assert set(statement["Action"]) == {"sts:AssumeRole", "sts:SetSourceIdentity"}
    assert statement["Condition"]["Null"] == {"sts:SourceIdentity": "false"}
    assert "sts:ExternalId" in statement["Condition"]["StringEquals"]
