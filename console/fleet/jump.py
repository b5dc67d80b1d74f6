"""Where a typed name jumps to on the dashboard: a project, a cluster or both, matched fuzzily."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

# Characters after which a letter starts a word of a name: `c` in `checkout-api`, `a` in `api`.
WORD_BREAKS = frozenset("-_./ ")
CLOSEST = 3
# Letters far apart cost at most this much: a word start further on still wins.
MAX_SPREAD_COST = 15


def fuzzy_score(query: str, name: str) -> float | None:
    """How well `query` names `name` (higher is better), or None when its letters are not in
    `name` in order. Case-insensitive: the whole name beats a start, a start beats a piece
    inside (but initials, `ca` for checkout-api, beat a piece inside a word), a piece beats
    scattered letters; letters that start words or follow each other count more, and a
    shorter name wins a tie."""
    q, n = query.casefold(), name.casefold()
    if not q:
        return None
    if q == n:
        return 1000.0
    if n.startswith(q):
        return 900.0 - len(n) / 100
    at = n.find(q)
    if at >= 0:
        starts_word = n[at - 1] in WORD_BREAKS
        return 800.0 + (50 if starts_word else 0) - at - len(n) / 100
    placings = [_subsequence(q, n, prefer_word_starts=flag) for flag in (True, False)]
    scores = [_placed_score(n, positions) for positions in placings if positions is not None]
    return max(scores) if scores else None


def _placed_score(name: str, positions: list[int]) -> float:
    starts = [p == 0 or name[p - 1] in WORD_BREAKS for p in positions]
    if len(positions) > 1 and all(starts):
        # Initials (`ca` for checkout-api) beat a piece inside a word (notifi-ca-tions).
        return 820.0 - len(name) / 100
    score = 500.0
    for index, position in enumerate(positions):
        if starts[index]:
            score += 20
        if index and positions[index - 1] == position - 1:
            score += 10
    spread = positions[-1] - positions[0] + 1 - len(positions)
    return score - min(spread, MAX_SPREAD_COST) - len(name) / 100


def _subsequence(query: str, name: str, *, prefer_word_starts: bool) -> list[int] | None:
    """Where each letter of `query` is found in `name`, in order, leftmost (or at the next
    word start that has it, when preferred); None when not all are, that way."""
    starts = [p for p in range(len(name)) if p == 0 or name[p - 1] in WORD_BREAKS]
    positions: list[int] = []
    start = 0
    for letter in query:
        at = name.find(letter, start)
        if prefer_word_starts:
            at = next((p for p in starts if p >= start and name[p] == letter), at)
        if at < 0:
            return None
        positions.append(at)
        start = at + 1
    return positions


def ranked(query: str, names: Iterable[str]) -> list[str]:
    """The names `query` matches, best first (ties in the given order)."""
    matched = [
        (score, index, name)
        for index, name in enumerate(names)
        if (score := fuzzy_score(query, name)) is not None
    ]
    matched.sort(key=lambda item: (-item[0], item[1]))
    return [name for _, _, name in matched]


def closest(query: str, names: Iterable[str], count: int = CLOSEST) -> list[str]:
    """The `count` names that look most like `query` (difflib's ratio), for a 'did you mean'."""
    matcher = difflib.SequenceMatcher(None)
    matcher.set_seq2(query.casefold())  # difflib caches what it learns of the second one

    def likeness(name: str, *, quick: bool) -> float:
        matcher.set_seq1(name.casefold())
        return matcher.quick_ratio() if quick else matcher.ratio()

    # The exact ratio is dear: only for the names its cheap upper bound ranks first.
    listed = list(names)
    bounded = sorted(range(len(listed)), key=lambda i: -likeness(listed[i], quick=True))
    few = sorted(bounded[: count * 4])
    scored = [(likeness(listed[i], quick=False), i) for i in few]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [listed[i] for _, i in scored[:count]]


@dataclass(frozen=True)
class Jump:
    """What a typed name resolves to. `project` and `cluster` are where the cursor goes (None:
    stay in that row or column); both None: nothing matched, and `closest` holds the names
    that look most like what was typed."""

    project: str | None
    cluster: str | None
    others: tuple[str, ...] = ()
    """The next best matches of the same kind, for the suggestion line."""
    closest: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.project is not None or self.cluster is not None

    def describe(self) -> str:
        """The target as the suggestion line words it: `storefront · prod1`."""
        return " · ".join(part for part in (self.project, self.cluster) if part is not None)


def split_query(query: str) -> tuple[str, str | None]:
    """`project/cluster` or `project cluster` into its two parts; one word alone: (word, None)."""
    text = query.strip()
    if "/" in text:
        first, _, second = text.partition("/")
        return first.strip(), second.strip() or None
    words = text.split()
    if len(words) >= 2:
        return " ".join(words[:-1]), words[-1]
    return text, None


def resolve(query: str, projects: Iterable[str], clusters: Iterable[str]) -> Jump | None:
    """Where `query` jumps: one word is the best project or cluster it names (a project wins a
    tie); two words (or `a/b`) are a project and a cluster, and both must match. None: nothing
    typed yet."""
    project_names, cluster_names = list(projects), list(clusters)
    first, second = split_query(query)
    if not first and second is None:
        return None
    if second is not None:
        jump = _pair(first, second, project_names, cluster_names)
        if jump.found or "/" in query:
            return jump
        # `check api`: two words of one name rather than a project and a cluster?
        whole = _one(query.replace(" ", ""), project_names, cluster_names)
        return whole if whole.found else jump
    return _one(first, project_names, cluster_names)


def _one(first: str, project_names: list[str], cluster_names: list[str]) -> Jump:
    best_projects = ranked(first, project_names)
    best_clusters = ranked(first, cluster_names)
    project_score = fuzzy_score(first, best_projects[0]) if best_projects else None
    cluster_score = fuzzy_score(first, best_clusters[0]) if best_clusters else None
    if project_score is None and cluster_score is None:
        return Jump(None, None, closest=tuple(closest(first, project_names + cluster_names)))
    if cluster_score is None or (project_score is not None and project_score >= cluster_score):
        return Jump(best_projects[0], None, others=tuple(best_projects[1:CLOSEST]))
    return Jump(None, best_clusters[0], others=tuple(best_clusters[1:CLOSEST]))


def _pair(first: str, second: str, projects: list[str], clusters: list[str]) -> Jump:
    best_projects = ranked(first, projects) if first else []
    best_clusters = ranked(second, clusters)
    if first and not best_projects:
        return Jump(None, None, closest=tuple(closest(first, projects)))
    if not best_clusters:
        return Jump(None, None, closest=tuple(closest(second, clusters)))
    project = best_projects[0] if best_projects else None
    return Jump(project, best_clusters[0], others=tuple(best_projects[1:CLOSEST]))
