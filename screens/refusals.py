"""A refused key says why: a key whose action the screen's check_action turns down (hidden
from the footer or shown disabled) tells the person, in one line, instead of doing nothing."""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual.actions import parse
from textual.screen import Screen

from console.access import Action


class SaysWhyNot(Screen[None]):
    """A screen whose refused keys say why (`why_not`)."""

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str:
        """Why `action` may not run now, in one line ("": nothing to say, stay silent)."""
        return ""

    def on_key(self, event: events.Key) -> None:
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            _, name, parameters = parse(binding.action)
            if self.check_action(name, parameters) is True:
                continue
            reason = self.why_not(name, parameters)
            if reason:
                title = f"{binding.description}: not now"
                self.notify(reason, title=title, severity="warning", markup=False)
                return


def deploy_refusal(screen: Screen[None], pairs: Iterable[tuple[str, str]]) -> str:
    """Why `d` deploys to none of `pairs` (project, cluster): the first pair's reason, as
    the app's access check words it ("" when one of them may be deployed to)."""
    refusal = getattr(screen.app, "refusal", None)
    if refusal is None:
        return ""
    reasons = [refusal(Action.DEPLOY, cluster, project) for project, cluster in pairs]
    if not reasons or not all(reasons):
        return ""
    return str(reasons[0])
