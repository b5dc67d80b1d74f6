"""Roll back or re-run a recorded deploy, and open its full log: the keys the history list and a
deploy's detail share, what each may do to the deploy under them, and why not in one line."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.message import Message

from console.config import Config
from console.model import DeployState
from console.store import DeployRecord, Store
from screens.deploy.dialog import DeployPreset
from screens.messages import error_text
from screens.refusals import SaysWhyNot, deploy_refusal

# A deploy that ended without the release it brought: it may be run again.
RERUNNABLE: tuple[str, ...] = (
    DeployState.FAILED,
    DeployState.ROLLED_BACK,
    DeployState.CANCELLED,
    DeployState.INTERRUPTED,
)
UNFINISHED: tuple[str, ...] = (DeployState.QUEUED, DeployState.RUNNING)
# The keys' actions, as screens/keys.py binds them.
ROLLBACK, RERUN, LOG = "rollback", "rerun", "deploy_log"
TITLES = {ROLLBACK: "Roll back", RERUN: "Re-run"}


@dataclass
class RedeployAsked(Message):
    """A person asked to roll back or re-run a recorded deploy: the app opens the deploy
    dialog on the pair with `preset`'s release (as `d` does, with the same checks)."""

    project: str
    cluster: str
    preset: DeployPreset


@dataclass
class DeployLogAsked(Message):
    """A person asked for a deploy's full log: the app opens it from the store, scrolled to
    the end. Without `deploy_id`, the last deploy of the pair (project, cluster)."""

    deploy_id: str | None = None
    project: str | None = None
    cluster: str | None = None


def ended_word(state: str) -> str:
    return state.replace("_", " ")


def rollback_refusal(record: DeployRecord) -> str:
    """Why the deploy is not one to roll back ("" when it is, as far as its record says)."""
    if record.state == DeployState.SUCCEEDED:
        return ""
    if record.state in UNFINISHED:
        return f"{record.id} is {record.state}: only a deploy that succeeded is rolled back."
    before = record.previous_release or "the release before it"
    return (
        f"{record.id} {ended_word(record.state)}: {before} still runs, nothing to roll back "
        f"(R runs {record.release} again)."
    )


def rerun_refusal(record: DeployRecord) -> str:
    """Why the deploy is not one to run again ("" when it is)."""
    if record.state in RERUNNABLE:
        return ""
    if record.state in UNFINISHED:
        return f"{record.id} is {record.state}: it has not ended."
    return (
        f"{record.id} succeeded: b rolls it back; d on the dashboard deploys {record.release} "
        "again."
    )


def pair_refusal(config: Config, record: DeployRecord) -> str:
    """Why the deploy's pair is no longer one to deploy to in this config ("" if it is)."""
    project = next((p for p in config.projects if p.name == record.project), None)
    if project is None:
        return f"{record.project} is no longer in the config."
    if record.cluster not in project.clusters:
        return f"{record.project} is no longer deployed to {record.cluster} in the config."
    return ""


async def rollback_release(store: Store, record: DeployRecord) -> str | None:
    """The release that ran in the pair before the deploy: its record's, else the release of
    the pair's last deploy that succeeded before it (None: nothing ran before)."""
    if record.previous_release:
        return record.previous_release
    earlier = await store.deploys(
        project=record.project,
        cluster=record.cluster,
        state=DeployState.SUCCEEDED.value,
        before=record.id,
        limit=1,
    )
    return earlier[0].release if earlier else None


def rollback_preset(record: DeployRecord, release: str) -> DeployPreset:
    return DeployPreset(
        release,
        f"Rollback of {record.id}: {release} again, which {record.release} replaced.",
        rollback_of=record.id,
    )


def rerun_preset(record: DeployRecord) -> DeployPreset:
    return DeployPreset(
        record.release,
        f"Re-run of {record.id} ({ended_word(record.state)}): {record.release} again.",
    )


class RedeployKeys(SaysWhyNot):
    """A screen showing recorded deploys: b rolls the one under the cursor back, R runs it
    again, o opens its full log; a key that does not apply says why."""

    store: Store

    @property
    def redeploy_record(self) -> DeployRecord | None:
        """The deploy the keys act on (None: none, say the list is empty)."""
        raise NotImplementedError

    def redeploy_check(self, action: str) -> bool | None:
        """check_action for the shared keys: True, None (shown, disabled for this deploy),
        False (hidden: this console deploys nothing)."""
        record = self.redeploy_record
        if action == LOG:
            return True if record is not None else None
        if getattr(self.app, "deploys", None) is None:
            return False
        return True if record is not None and not self.redeploy_refusal(action) else None

    def redeploy_refusal(self, action: str) -> str:
        """Why the key does nothing to the deploy under it ("": it acts)."""
        record = self.redeploy_record
        if record is None:
            return "No deploy is selected." if action in (*TITLES, LOG) else ""
        if action == LOG:
            return ""
        config: Config | None = getattr(self.app, "config", None)
        refusal = pair_refusal(config, record) if config is not None else ""
        if not refusal:  # who may deploy there, and whether this console deploys at all
            refusal = deploy_refusal(self, [(record.project, record.cluster)])
        if not refusal:
            refusal = rollback_refusal(record) if action == ROLLBACK else rerun_refusal(record)
        return refusal

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str:
        if action in (ROLLBACK, RERUN, LOG):
            return self.redeploy_refusal(action)
        return ""

    @work(exclusive=True, group="redeploy", exit_on_error=False)
    async def action_rollback(self) -> None:
        record = self.redeploy_record
        if record is None or self.redeploy_check(ROLLBACK) is not True:
            return
        try:
            release = await rollback_release(self.store, record)
        except Exception as error:
            self.notify(error_text(error), title="Roll back: not now", severity="error")
            return
        if release is None:
            self.notify(
                f"{record.id} replaced no release (the first deploy of {record.project} to "
                f"{record.cluster}): nothing to roll back to.",
                title="Roll back: not now",
                severity="warning",
                markup=False,
            )
            return
        preset = rollback_preset(record, release)
        self.post_message(RedeployAsked(record.project, record.cluster, preset))

    def action_rerun(self) -> None:
        record = self.redeploy_record
        if record is not None and self.redeploy_check(RERUN) is True:
            self.post_message(RedeployAsked(record.project, record.cluster, rerun_preset(record)))

    def action_deploy_log(self) -> None:
        record = self.redeploy_record
        if record is not None:
            self.post_message(DeployLogAsked(record.id))
