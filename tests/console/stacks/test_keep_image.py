"""A stack's launch template keeps its image: a deploy to a new release changes no stack."""

from __future__ import annotations

from typing import Any

from console.stacks.diff import diff_templates
from console.stacks.plan import keep_image


def template(image: str | None, instance_type: str = "t3.small") -> dict[str, Any]:
    data: dict[str, Any] = {"InstanceType": instance_type}
    if image is not None:
        data["ImageId"] = image
    return {
        "Resources": {
            "LaunchTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {"LaunchTemplateName": "dc-shop-staging", "LaunchTemplateData": data},
            }
        }
    }


def test_the_running_release_moving_on_changes_no_stack() -> None:
    stack = template("ami-1")
    after_a_deploy = template("ami-2")  # the newest instance runs the new release's image
    assert diff_templates(stack, keep_image(after_a_deploy, stack)) == []
    assert (
        after_a_deploy["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["ImageId"]
        == "ami-2"
    )  # the caller's template is left as built


def test_a_stack_without_an_image_stays_without_one_and_other_changes_still_show() -> None:
    stack = template(None)
    assert diff_templates(stack, keep_image(template("ami-2"), stack)) == []
    changed = diff_templates(stack, keep_image(template("ami-2", "m5.large"), stack))
    assert [c.logical_id for c in changed] == ["LaunchTemplate"]


def test_a_new_stack_starts_from_what_the_pair_runs() -> None:
    assert keep_image(template("ami-2"), None) == template("ami-2")
