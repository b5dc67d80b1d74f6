"""Putting a copy of the store back: its chain verified, its gap to the outside anchor said and
audited, the deploys it does not know handed to the runner, the replaced store kept aside."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console.audit.anchor import chain_problem, mismatch, read_latest, s3_anchors
from console.config import Config
from console.config.paths import private_dir
from console.errors import AwsError, ConsoleError
from console.servers.adopt import Adoption, adopt, find_adoptions
from console.servers.runner_service import presence_path
from console.store import Store
from console.store.backup import (
    CopySummary,
    copy_database,
    fold_wal,
    remove_database,
    summarize,
    taken_at,
    temporary_beside,
)

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway
    from console.fleet.inventory import Fleet


class RestoreRefused(ConsoleError):
    """The copy is not put back (bad chain, contradicts the anchor, a runner serves the store,
    the store exists without --force): nothing was changed."""


@dataclass
class RestoreOutcome:
    copy: CopySummary
    into: Path
    taken_at: datetime
    gap: str
    replaced: Path | None = None
    adoptions: list[Adoption] = field(default_factory=list)
    aws_problem: str | None = None
    queued: int = 0

    @property
    def statement(self) -> str:
        """The restore's audit row: where from, what was lost, what the runner will do."""
        when = f"{self.taken_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if "missing" in self.gap:
            lost = f"entries after #{self.copy.last_id} were lost: {self.gap}"
        else:
            lost = f"entries written after #{self.copy.last_id}, if any, were lost ({self.gap})"
        if self.aws_problem is not None:
            deploys = f"AWS was not read ({self.aws_problem}): deploys the copy did not know "
            deploys += "are not known yet"
        elif self.adoptions:
            deploys = "deploys the copy did not know (or knew unfinished) will be reconciled: "
            deploys += "; ".join(adoption.described for adoption in self.adoptions)
        else:
            deploys = "AWS shows no deploy the copy does not know"
        return f"restored from backup {self.copy.path.name} taken at {when}; {lost}; {deploys}"


@contextlib.contextmanager
def unserved(store: Path) -> Iterator[None]:
    """Hold the store's presence file exclusively: no runner serves it now, and none can take
    its place until the swap is done (a runner holds it shared, console.servers.runner_service)."""
    private_dir(store.parent)
    try:
        fd = os.open(presence_path(store), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise RestoreRefused(f"cannot open {presence_path(store)}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RestoreRefused(
                f"a runner serves {store}: stop it first (it holds {presence_path(store)})"
            ) from None
        yield
    finally:
        os.close(fd)


def _exists(store: Path) -> bool:
    return any(Path(f"{store}{suffix}").exists() for suffix in ("", "-wal"))


def set_aside(store: Path, now: datetime) -> Path:
    """Rename the store and its -wal/-shm to <store>.replaced-<time> (it stays openable)."""
    aside = store.with_name(f"{store.name}.replaced-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}")
    for suffix in ("-wal", "-shm", "-journal", ""):
        path = Path(f"{store}{suffix}")
        if path.exists():
            os.replace(path, Path(f"{aside}{suffix}"))
    return aside


async def gap_to_anchor(store: Store, copy: CopySummary, config: Config | None) -> str:
    """How far the copy is behind the anchor, in words ('' when no anchor is configured or it
    is not ahead); RestoreRefused when the copy contradicts it."""
    if config is None or config.audit.anchor_bucket is None:
        return "no anchor configured to compare with"
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aws")

    def gateway(name: str) -> AwsGateway:
        from console.aws.gateway import AwsGateway

        return AwsGateway(config.cluster(name), executor)

    try:
        anchors = s3_anchors(config.audit, gateway)
        if anchors is None:
            return ""
        latest = await read_latest(anchors)
        if latest.problem is not None:
            return f"the anchor could not be compared: {latest.problem}"
        anchor = latest.anchor
        if anchor is None:
            return f"no anchor written yet to {anchors.location}"
        when = f"{anchor.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if anchor.rows > copy.last_id:
            missing = anchor.rows - copy.last_id
            return (
                f"the copy ends at audit #{copy.last_id}; the anchor of {when} says "
                f"#{anchor.rows}: {missing} entr{'y is' if missing == 1 else 'ies are'} missing"
            )
        problem = await mismatch(store, anchor)
        if problem is not None:
            raise RestoreRefused(f"the copy contradicts the anchor: {problem}; not restored")
        return f"the copy holds the anchor of {when} (#{anchor.rows})"
    except AwsError as error:
        return f"the anchor could not be read: {error.message}"
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


async def restore(
    copy_path: Path,
    into: Path,
    *,
    config: Config | None,
    actor: str,
    force: bool = False,
    fleet: Callable[[], Fleet] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RestoreOutcome:
    """Put the copy at `copy_path` in place of the store `into` (see the module's doc)."""
    now = (clock or (lambda: datetime.now(UTC)))()
    copy_path = Path(copy_path).expanduser().absolute()
    into = Path(into).expanduser().absolute()
    if not copy_path.is_file():
        raise RestoreRefused(f"no copy at {copy_path}")
    if copy_path == into:
        raise RestoreRefused(f"{copy_path} is the store itself: restore into another path")
    with unserved(into):
        if _exists(into) and not force:
            raise RestoreRefused(
                f"{into} exists: pass --force to replace it (it is kept aside, not deleted)"
            )
        candidate = temporary_beside(into)
        try:
            await copy_database(copy_path, candidate)
            summary = await summarize(candidate)
            copy = CopySummary(copy_path, *_counts(summary))
            taken = taken_at(copy_path)
            outcome = RestoreOutcome(copy, into, taken, "")
            await _prepare(candidate, outcome, config, actor, fleet)
            await fold_wal(candidate)
            if _exists(into):
                outcome.replaced = set_aside(into, now)
            os.replace(candidate, into)
        finally:
            remove_database(candidate)
    return outcome


def _counts(summary: CopySummary) -> tuple[int, int, int, str | None, int]:
    return (
        summary.deploys,
        summary.audit_rows,
        summary.last_id,
        summary.last_hash,
        summary.size,
    )


async def _prepare(
    candidate: Path,
    outcome: RestoreOutcome,
    config: Config | None,
    actor: str,
    fleet: Callable[[], Fleet] | None,
) -> None:
    """On the candidate file: verify the chain, say the gap, adopt what AWS shows, audit it."""
    async with await Store.open(candidate, create=False) as store:
        check = await store.check_audit()
        if check.problem is not None:
            raise RestoreRefused(
                f"the copy's audit chain does not verify: {chain_problem(check)} "
                f"({check.rows} rows before it verify); not restored"
            )
        outcome.gap = await gap_to_anchor(store, outcome.copy, config)
        outcome.queued = sum(
            1 for record in await store.unfinished_deploys() if record.state == "queued"
        )
        if config is None:
            outcome.aws_problem = "no config"
        else:
            made = (fleet or (lambda: _fleet(config)))()
            try:
                outcome.adoptions = await find_adoptions(store, config, made.gateway)
            except ConsoleError as error:
                outcome.aws_problem = error.message
            finally:
                made.close()
        await store.audit(
            "store.restored", actor=actor, outcome="restored", reason=outcome.statement
        )
        for adoption in outcome.adoptions:
            await adopt(store, adoption, actor)


def _fleet(config: Config) -> Fleet:
    from console.fleet.inventory import Fleet

    return Fleet(config)
