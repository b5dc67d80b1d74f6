"""Who may do what: a role per user (viewer, deployer, admin), per cluster if config says so,
checked in the core where actions run, so no screen or command can go around it."""

from __future__ import annotations

import os
from enum import StrEnum

from console.config import Config
from console.errors import ConsoleError
from console.identity import person

ANYONE = "*"
# Set by `deploy-console web` for what it serves: the browser has no login, so whoever opens
# the page is a viewer, whatever config says of the OS user the server runs as.
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


class AccessDenied(ConsoleError):
    """The user's role does not allow the action."""


class Access:
    """The roles of config's [access]; a user it does not name is a viewer (default deny).

    With $DEPLOY_CONSOLE_READ_ONLY set (to anything but "" or "0") everyone is a viewer.
    """

    def __init__(self, config: Config, read_only: bool | None = None) -> None:
        self.config = config
        self.settings = config.access
        if read_only is None:
            read_only = os.environ.get(READ_ONLY_ENV, "") not in ("", "0")
        self.read_only = read_only

    def role(self, actor: str, cluster: str | None = None) -> Role:
        if self.read_only:
            return Role.VIEWER
        user = person(actor)
        if cluster is not None:
            overrides = self.settings.clusters.get(cluster, {})
            for name in (user, ANYONE):
                if name in overrides:
                    return Role(overrides[name])
        for name in (user, ANYONE):
            if name in self.settings.users:
                return Role(self.settings.users[name])
        return Role.VIEWER

    def allows(
        self, actor: str, action: Action, cluster: str | None = None, owner: str | None = None
    ) -> bool:
        try:
            self.check(actor, action, cluster, owner)
        except AccessDenied:
            return False
        return True

    def check(
        self, actor: str, action: Action, cluster: str | None = None, owner: str | None = None
    ) -> None:
        """AccessDenied (one line: who, what role, what it needs) unless allowed."""
        role = self.role(actor, cluster)
        protected = cluster is not None and self.config.cluster(cluster).protected
        if action in (Action.FREEZE, Action.LOCK):
            needed = Role.ADMIN
        elif action is Action.DEPLOY:
            needed = Role.ADMIN if protected else Role.DEPLOYER
        else:  # cancel, move: their own deploys for a deployer, anyone's for an admin
            own = owner is not None and person(owner) == person(actor)
            needed = Role.DEPLOYER if own and not protected else Role.ADMIN
        if RANK[role] >= RANK[needed]:
            return
        where = f" in {cluster}" if cluster else ""
        why = "a protected cluster" if protected and needed is Role.ADMIN else ""
        if action in (Action.CANCEL, Action.MOVE) and owner and person(owner) != person(actor):
            why = f"{person(owner)}'s deploy"
        detail = f" ({why} needs {needed})" if why else f" (needs {needed})"
        article = "an" if role is Role.ADMIN else "a"
        raise AccessDenied(f"{person(actor)} is {article} {role}{where}: may not {action}{detail}")
