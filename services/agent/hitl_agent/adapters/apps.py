"""Finding the agent apps to host: import strings (`--app`, AGENT_APPS) or entry points.

Like `uvicorn module:app` and `celery -A`: an app is `package.module:attribute`,
where the attribute is a `hitl_sdk.App`, a `hitl_sdk.Agent`, or a function of no
arguments returning either. Named apps win; with none named, every app declared
under the `hitl.apps` entry point group of the installed packages is hosted.
Anything wrong stops start-up with a message naming the app and the problem.
"""

import importlib
import importlib.metadata
import logging
from dataclasses import dataclass

from hitl_sdk import Agent, App, DefinitionError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hitl.apps"


class AppLoadError(Exception):
    """An app could not be loaded; the message says which and why."""


@dataclass(frozen=True)
class LoadedApp:
    source: str  # the import string, or "entry point <name> (<value>)"
    app: App


def parse_apps(value: str) -> list[str]:
    """AGENT_APPS: import strings separated by commas or whitespace."""
    return [part for part in value.replace(",", " ").split() if part]


def load_app(spec: str, *, source: str | None = None) -> LoadedApp:
    where = source or repr(spec)
    module_name, sep, attribute = spec.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(f"{where}: expected 'package.module:attribute' (e.g. 'myco.agents:app')")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"{where}: no module named {missing!r}; is its package installed in this "
                "environment (pip install / uv pip install)?"
            ) from None
        raise AppLoadError(f"{where}: importing {module_name} failed: {exc}") from exc
    except DefinitionError as exc:
        raise AppLoadError(f"{where}: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(f"{where}: importing {module_name} raised {exc!r}") from exc
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppLoadError(
                f"{where}: module {module_name} has no attribute {attribute!r}"
            ) from None
    if callable(target) and not isinstance(target, App | Agent):
        try:
            target = target()
        except DefinitionError as exc:
            raise AppLoadError(f"{where}: {exc}") from exc
    if isinstance(target, Agent):
        target = App([target], name=spec)
    if not isinstance(target, App):
        raise AppLoadError(
            f"{where}: {attribute} is a {type(target).__name__}, not a hitl_sdk.App "
            "(or an Agent, or a function returning one)"
        )
    return LoadedApp(where, target)


def discover() -> list[LoadedApp]:
    """Every app installed packages declare under the `hitl.apps` entry point group."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return [
        load_app(ep.value, source=f"entry point {ep.name!r} ({ep.value})")
        for ep in sorted(found, key=lambda ep: ep.name)
    ]


def resolve(named: list[str]) -> list[LoadedApp]:
    """The apps to host: those named, else the installed ones; agents unique across them."""
    loaded = [load_app(spec) for spec in named] if named else discover()
    if not loaded:
        raise AppLoadError(
            "no agent apps to host: pass --app package.module:app, set AGENT_APPS, or "
            f"install a package that declares a {ENTRY_POINT_GROUP!r} entry point"
        )
    owners: dict[str, str] = {}
    for item in loaded:
        if not item.app.agents:
            raise AppLoadError(f"{item.source}: the app has no agents")
        for agent in item.app.agents:
            if agent.name in owners:
                raise AppLoadError(
                    f"two agents named {agent.name!r}: in {owners[agent.name]} and in {item.source}"
                )
            owners[agent.name] = item.source
    return loaded
