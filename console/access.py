"""Who may do what: a role per user (viewer, deployer, admin), per cluster if config says so,
checked in the core where actions run, so no screen or command can go around it."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from enum import StrEnum
from typing import ParamSpec

from console.config import Config
from console.errors import ConsoleError
from console.identity import (
    LOCAL,
    actor_fields,
    current_actor,
    known_groups,
    person,
    unix_groups,
)

ANYONE = "*"
# Set by `deploy-console web` for what it serves without --allow-actions: everyone a viewer,
# whatever their role. A variable may only take rights away, never grant them.
READ_ONLY_ENV = "DEPLOY_CONSOLE_READ_ONLY"


class Role(StrEnum):
    VIEWER = "viewer"  # looks
    DEPLOYER = "deployer"  # deploys, cancels and moves their own, on unprotected clusters
    ADMIN = "admin"  # everything: protected clusters, freezes, locks, others' deploys


RANK = {Role.VIEWER: 0, Role.DEPLOYER: 1, Role.ADMIN: 2}


class Action(StrEnum):
    DEPLOY = "deploy"  # queue a deploy (a rollback and a promotion's stages too)
    CANCEL = "cancel"
    MOVE = "move"
    FREEZE = "freeze"  # and unfreeze
    LOCK = "lock"  # and unlock
    BAKE = "end or roll back a bake"  # as cancel: their own for a deployer, else an admin
    DEPLOY_OUTSIDE_WINDOW = "deploy outside its window"  # admins only (checked with no owner)
    SSH = "ssh"  # open one's own shell on an instance (as a deploy: admin on protected ones)
    APPROVE = "approve"  # and reject: another's deploy (admin in that cluster; never one's own)


class AccessDenied(ConsoleError):
    """The user's role does not allow the action."""


P = ParamSpec("P")


def _as_question(check: Callable[P, None]) -> Callable[P, bool]:
    """A check that raises AccessDenied, as one that answers True or False."""

    def question(*args: P.args, **kwargs: P.kwargs) -> bool:
        try:
            check(*args, **kwargs)
        except AccessDenied:
            return False
        return True

    return question


class Access:
    """The roles of config's [access]; a user it does not name is a viewer (default deny).

    The most specific scope that names the user decides: the project's table, then the
    cluster's, then the top one. Within a scope, the user's own name wins, then the highest
    role of any group they are in ("@name"), then "*". Groups are the actor's: the Unix groups
    of a local account, the groups a door handed a session (a proxy's header, an SSH key's).
    With $DEPLOY_CONSOLE_READ_ONLY set (to anything but "" or "0") everyone is a viewer: a
    variable can only take rights away.
    """

    def __init__(self, config: Config, read_only: bool | None = None) -> None:
        self.config = config
        self.settings = config.access
        if read_only is None:
            read_only = os.environ.get(READ_ONLY_ENV, "") not in ("", "0")
        self.read_only = read_only

    def role(self, actor: str, cluster: str | None = None, project: str | None = None) -> Role:
        if self.read_only:
            return Role.VIEWER
        scopes = [
            self.settings.projects.get(project or "", {}),
            self.settings.clusters.get(cluster or "", {}),
            self.settings.users,
        ]
        for grants in scopes:
            role = _granted(grants, person(actor), lambda: groups_of(actor))
            if role is not None:
                return role
        return Role.VIEWER

    def check(
        self,
        actor: str,
        action: Action,
        cluster: str | None = None,
        owner: str | None = None,
        project: str | None = None,
    ) -> None:
        """AccessDenied (one line: who, what role, what it needs) unless allowed."""
        role = self.role(actor, cluster, project)
        protected = cluster is not None and self.config.cluster(cluster).protected
        if action in (Action.FREEZE, Action.LOCK):
            needed = Role.ADMIN
        elif action in (Action.DEPLOY, Action.SSH):
            needed = Role.ADMIN if protected else Role.DEPLOYER
        else:  # cancel, move: their own deploys for a deployer, anyone's for an admin
            own = owner is not None and person(owner) == person(actor)
            needed = Role.DEPLOYER if own and not protected else Role.ADMIN
        if RANK[role] >= RANK[needed]:
            return
        where = f" in {cluster}" if cluster else ""
        if project and project in self.settings.projects:
            where = f" for {project}{where}"
        why = "a protected cluster" if protected and needed is Role.ADMIN else ""
        if action in (Action.CANCEL, Action.MOVE) and owner and person(owner) != person(actor):
            why = f"{person(owner)}'s deploy"
        detail = f" ({why} needs {needed})" if why else f" (needs {needed})"
        article = "an" if role is Role.ADMIN else "a"
        raise AccessDenied(f"{person(actor)} is {article} {role}{where}: may not {action}{detail}")

    # Whether `check` lets the same arguments through.
    allows = _as_question(check)


def _granted(
    grants: dict[str, str], user: str, groups: Callable[[], tuple[str, ...]]
) -> Role | None:
    """The role one scope grants: the user's own entry, else their groups' highest, else "*"."""
    if not grants:
        return None
    if user in grants:
        return Role(grants[user])
    by_group = [Role(grants[f"@{group}"]) for group in groups() if f"@{group}" in grants]
    if by_group:
        return max(by_group, key=RANK.__getitem__)
    if ANYONE in grants:
        return Role(grants[ANYONE])
    return None


def groups_of(actor: str) -> tuple[str, ...]:
    """The groups an actor is in: what the door handed this process for its own actor; the
    Unix groups of a local account; none for anyone else (roles by group are decided where
    the actor asks, and the queue keeps the decision)."""
    known = known_groups(actor)
    if known is not None:
        return known
    current = current_actor()
    if actor == str(current):
        return current.groups
    fields = actor_fields(actor)
    if fields["door"] != LOCAL:
        return ()
    try:
        account = pwd.getpwnam(fields["user"])
    except KeyError:
        return ()
    return unix_groups(account.pw_name, account.pw_gid)
