"""A stack change whose console died: its end read from CloudFormation and put on record."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from console.aws.gateway import AwsGateway
from console.config import Config
from console.deploy.stack_change import put_right_stack_change
from console.stacks.template import stack_name
from console.store import Store


async def test_a_running_change_is_ended_as_its_stack_says(
    world_config: Config, tmp_path: Path
) -> None:
    name = stack_name("storefront", "staging")  # the world made it: CREATE_COMPLETE
    executor = ThreadPoolExecutor(max_workers=2)
    gateway = AwsGateway(world_config.cluster("staging"), executor)
    try:
        async with await Store.open(tmp_path / "store.db") as store:
            changes = store.stack_changes
            running = await changes.plan(
                "storefront", "staging", name, template="{}", summary="s", actor="alice"
            )
            await changes.queued(running.id, "d-1", "alice")
            await changes.started(running.id, "alice", "cs-1")
            never = await changes.plan(
                "storefront", "staging", name, template="{}", summary="s", actor="alice"
            )
            await changes.queued(never.id, "d-2", "alice")

            said, gone = await put_right_stack_change(store, running.id, "runner", gateway)
            assert gone == [] and said.startswith(f"stack change {running.id} applied")
            assert f"{name} is CREATE_COMPLETE" in said
            said, _ = await put_right_stack_change(store, never.id, "runner", gateway)
            # Queued but never executed: nothing of it reached the stack.
            assert said.startswith(f"stack change {never.id} failed")

            assert (await changes.get(running.id)).state == "applied"  # type: ignore[union-attr]
            assert (await changes.get(never.id)).state == "failed"  # type: ignore[union-attr]
            actions = [row.action for row in await store.audit_rows()]
            assert actions.count("stack.applied") == 1 and actions.count("stack.failed") == 1
            again, _ = await put_right_stack_change(store, running.id, "runner", gateway)
            assert again == f"stack change {running.id} had ended applied"
    finally:
        executor.shutdown(wait=False)
