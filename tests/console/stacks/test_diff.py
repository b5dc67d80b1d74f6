"""The template diff: actions, the properties that change, what replaces, the DNS move."""

from __future__ import annotations

import copy
import json
from typing import Any

from console.stacks.diff import Action, Replacement, diff_templates, readable, replacement_of


def alb_template(name: str = "shop-staging", delay: str = "30", path: str = "/health") -> Any:
    tags = [{"Key": "Project", "Value": "shop"}]
    return {
        "Resources": {
            "SecurityGroup": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {
                    "GroupName": "dc-shop-lb",
                    "GroupDescription": "lb",
                    "VpcId": "vpc-1",
                },
            },
            "LoadBalancer": {
                "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
                "Properties": {"Name": name, "Scheme": "internal", "Tags": tags},
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
            },
            "TargetGroup": {
                "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                "Properties": {
                    "Name": name,
                    "Port": 80,
                    "HealthCheckPath": path,
                    "HealthCheckIntervalSeconds": 10,
                    "TargetGroupAttributes": [
                        {"Key": "deregistration_delay.timeout_seconds", "Value": delay}
                    ],
                },
            },
            "Listener": {
                "Type": "AWS::ElasticLoadBalancingV2::Listener",
                "Properties": {
                    "LoadBalancerArn": {"Ref": "LoadBalancer"},
                    "Port": 80,
                    "DefaultActions": [
                        {"Type": "forward", "TargetGroupArn": {"Ref": "TargetGroup"}}
                    ],
                },
            },
            "DnsRecord": {
                "Type": "AWS::Route53::RecordSet",
                "Properties": {
                    "HostedZoneId": "Z1",
                    "Name": "www.staging.example.internal.",
                    "Type": "CNAME",
                    "ResourceRecords": [{"Fn::GetAtt": ["LoadBalancer", "DNSName"]}],
                },
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
            },
        }
    }


def by_id(changes: list[Any]) -> dict[str, Any]:
    return {change.logical_id: change for change in changes}


def test_the_same_template_changes_nothing_even_as_text_with_strings_for_numbers() -> None:
    old = alb_template()
    new = copy.deepcopy(old)
    new["Resources"]["TargetGroup"]["Properties"]["Port"] = "80"
    assert diff_templates(json.dumps(old), new) == []


def test_no_stack_yet_adds_every_resource() -> None:
    changes = diff_templates(None, alb_template())
    assert [(c.action, c.logical_id) for c in changes][:2] == [
        (Action.ADD, "SecurityGroup"),
        (Action.ADD, "LoadBalancer"),
    ]
    assert {c.action for c in changes} == {Action.ADD}


def test_an_attribute_change_modifies_in_place_and_names_the_attribute() -> None:
    changes = diff_templates(alb_template(), alb_template(delay="60", path="/healthz"))
    assert [c.logical_id for c in changes] == ["TargetGroup"]
    group = changes[0]
    assert group.action is Action.MODIFY and group.replacement is Replacement.NO
    assert [p.describe() for p in group.properties] == [
        "HealthCheckPath: /health -> /healthz",
        "TargetGroupAttributes.deregistration_delay.timeout_seconds: 30 -> 60",
    ]


def test_a_name_change_replaces_the_load_balancer_its_listener_and_moves_the_record() -> None:
    changes = by_id(diff_templates(alb_template(), alb_template(name="shop-staging-2")))
    assert changes["LoadBalancer"].action is Action.REPLACE
    assert changes["TargetGroup"].action is Action.REPLACE
    # The listener names the old load balancer's ARN: it follows (LoadBalancerArn replaces).
    listener = changes["Listener"]
    assert listener.action is Action.REPLACE
    assert "LoadBalancerArn: Ref LoadBalancer gets a new value (LoadBalancer is replaced)" in [
        p.describe() for p in listener.properties
    ]
    record = changes["DnsRecord"]
    assert record.action is Action.MODIFY and record.replacement is Replacement.NO
    assert record.notes == (
        "DNS moves: www.staging.example.internal. will point at the new LoadBalancer's DNS name",
    )
    notes = " ".join(changes["LoadBalancer"].notes)
    assert "new DNS name: www.staging.example.internal. moves to it" in notes
    assert "UpdateReplacePolicy Retain" in notes
    assert "SecurityGroup" not in changes


def test_removed_and_retained() -> None:
    new = alb_template()
    del new["Resources"]["DnsRecord"]
    changes = diff_templates(alb_template(), new)
    assert [(c.action, c.logical_id) for c in changes] == [(Action.REMOVE, "DnsRecord")]
    assert "DeletionPolicy Retain" in changes[0].notes[0]


def test_the_replacement_table() -> None:
    elb = "AWS::ElasticLoadBalancing::LoadBalancer"
    assert replacement_of(elb, "LoadBalancerName", "a", "b") is Replacement.YES
    assert replacement_of(elb, "HealthCheck.Target", "a", "b") is Replacement.NO
    # Classic ELB: from availability zones to subnets replaces it; another subnet does not.
    assert replacement_of(elb, "Subnets", None, ["subnet-1"]) is Replacement.YES
    assert replacement_of(elb, "Subnets", ["subnet-1"], ["subnet-2"]) is Replacement.NO
    assert replacement_of("AWS::EC2::SecurityGroup", "GroupDescription", 1, 2) is Replacement.YES
    assert replacement_of("AWS::EC2::Instance", "InstanceType", 1, 2) is Replacement.INTERRUPTION
    assert replacement_of("AWS::EC2::LaunchTemplate", "LaunchTemplateData.ImageId", 1, 2) is (
        Replacement.NO
    )
    assert replacement_of("AWS::Route53::RecordSet", "Name", 1, 2) is Replacement.YES
    assert replacement_of("AWS::SQS::Queue", "QueueName", 1, 2) is Replacement.CONDITIONAL


def test_a_type_change_is_a_replace_and_values_read_well() -> None:
    old = alb_template()
    new = copy.deepcopy(old)
    new["Resources"]["LoadBalancer"]["Type"] = "AWS::ElasticLoadBalancing::LoadBalancer"
    changes = by_id(diff_templates(old, new))
    assert changes["LoadBalancer"].action is Action.REPLACE
    assert readable({"Fn::GetAtt": ["LoadBalancer", "DNSName"]}) == "LoadBalancer.DNSName"
    assert readable(None) == "(none)" and readable(["a", True]) == "[a, true]"
    action = {"Type": "forward", "TargetGroupArn": {"Ref": "TargetGroup"}}
    assert readable([action]) == "[{Type: forward, TargetGroupArn: Ref TargetGroup}]"
