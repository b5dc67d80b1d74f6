"""The dashboard's detail strip: one line on the highlighted cell: its mark and its last deploy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from textual.content import Content
from textual.widgets import Static

from console.model import DeployState
from console.queue.marks import LastDeploy, Mark, PairMark
from screens.widgets.format import DNS_MARK, DNS_MARK_STYLE, MARK_GLYPHS, MARK_STYLES, age_between

if TYPE_CHECKING:
    from console.drift.review import Reviewed

Pair = tuple[str, str]
Part = str | tuple[str, str]

OUTCOME_STYLES: dict[DeployState, str] = {
    DeployState.SUCCEEDED: "$text-success",
    DeployState.FAILED: "bold $text-error",
    DeployState.ROLLED_BACK: "$text-error",
    DeployState.CANCELLED: "$text-warning",
    DeployState.INTERRUPTED: "$text-warning",
}
# Marks that are the last deploy itself: the strip says it once, as the last deploy.
LAST_DEPLOY_MARKS = (Mark.FAILED, Mark.ROLLED_BACK)


def last_deploy_parts(
    last: LastDeploy | None, now: datetime, *, to: str | None = None
) -> list[Part]:
    """`last deploy 2.16.0 by alice 3h 04m ago, succeeded` (to a cluster, when `to` names it),
    with its reason when it did not succeed."""
    if last is None:
        return [("no last deploy known", "$text-muted")]
    where = f" to {to}" if to else ""
    age = age_between(now, last.at) or "0s"
    parts: list[Part] = [f"last deploy {last.release}{where} by {last.actor} {age} ago, "]
    outcome = last.outcome
    if last.state is not DeployState.SUCCEEDED and last.reason:
        outcome = f"{outcome}: {last.reason}"
    parts.append((outcome, OUTCOME_STYLES.get(last.state, "")))
    return parts


def cell_detail(
    project: str,
    cluster: str,
    *,
    deployed: bool,
    mark: PairMark | None,
    last: LastDeploy | None,
    now: datetime,
    drift: Sequence[Reviewed] = (),
    dns_finding: str | None = None,
) -> Content:
    """One cell: `web · prod1  ❄ frozen: …  ·  last deploy 2.16.0 by alice 3h 04m ago, …`."""
    head = f"{project} · {cluster}  "
    if not deployed:
        return Content.assemble(head, (f"{project} is not in {cluster}", "$text-muted"))
    parts: list[Part] = [head]
    if dns_finding:  # (dns) first: it is what the cell's red mark is about
        parts.extend([(f"{DNS_MARK} {dns_finding}", DNS_MARK_STYLE), "  ·  "])
    if mark is not None and mark.mark is not None and mark.mark not in LAST_DEPLOY_MARKS:
        glyph, style = MARK_GLYPHS[mark.mark], MARK_STYLES[mark.mark]
        if str(mark.mark) in mark.why:
            # `prod1 frozen by dave…`, `locked on cluster qaprod1…`: the why says the word.
            parts.extend([(glyph, style), f" {mark.why}"])
        else:
            parts.append((f"{glyph} {mark.words}", style))
            parts.append(f": {mark.why}" if mark.why else "")
        parts.append("  ·  ")
    elif mark is not None and mark.mark is not None:
        parts.append((f"{MARK_GLYPHS[mark.mark]} ", MARK_STYLES[mark.mark]))
    parts.extend(last_deploy_parts(last, now))
    parts.extend(drift_parts(drift))  # last: a long finding never hides the deploy state
    return Content.assemble(*parts)


def drift_parts(drift: Sequence[Reviewed]) -> list[Part]:
    """(drift) `  ·  ! drift provenance: 2.14.1 … (+1 more)` for a pair's findings to look at
    (baselined and acknowledged ones say nothing here: the project screen lists them)."""
    shown = [item.finding for item in drift if item.counts]
    if not shown:
        return []
    more = f" (+{len(shown) - 1} more)" if len(shown) > 1 else ""
    what = f"! drift {shown[0].kind}: {shown[0].what}{more}"
    return ["  ·  ", (what, "bold $text-warning")]


def project_detail(
    project: str, lasts: Mapping[Pair, LastDeploy], clusters: tuple[str, ...], now: datetime
) -> Content:
    """The project column: the project's newest last deploy, in any cluster."""
    mine = [(lasts[(project, c)], c) for c in clusters if (project, c) in lasts]
    if not mine:
        return Content.assemble(f"{project}  ", *last_deploy_parts(None, now))
    last, cluster = max(mine, key=lambda item: item[0].at)
    return Content.assemble(f"{project}  ", *last_deploy_parts(last, now, to=cluster))


class DetailStrip(Static):
    """One line under the matrix, cut with an ellipsis rather than wrapped."""

    DEFAULT_CSS = """
    DetailStrip {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """
