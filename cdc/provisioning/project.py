"""`cdc provision --hubspot-project DIR`: write, or bring up to date, the HubSpot developer-platform project
whose app and webhooks the sync configuration needs (content: `cdc.hubspot.project`).

Order: (1) ``ingest.public_url`` is required (the webhooks' ``targetUrl``); (2) ``hsproject.json`` is read
and merged first, since its ``srcDir`` places the components; (3) the app and webhooks components are read
and merged; (4) the three are checked (`cdc.hubspot.project_checks`); (5) each file whose JSON changed is
written through a temporary file renamed over it, so nobody reads half a file. A file whose JSON already
equals the result is not touched, whatever its formatting: a second run rewrites nothing. Problems are
reported, not fixed: they come from what a person wrote, and the files are still brought up to date.
Needs no HubSpot credentials: the project comes before the app, its token and its client secret.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cdc.hubspot.project import (
    APP_FILE,
    PROJECT_FILE,
    WEBHOOKS_FILE,
    AuthType,
    ProjectError,
    app_component,
    hsproject,
    required_scopes,
    webhooks_component,
)
from cdc.hubspot.project_checks import check_hsproject, check_project
from cdc.provisioning.needs import needs_of
from cdc.settings import Settings
from consumers.config import SyncConfig

__all__ = ["ProjectError", "ProjectReport", "render", "write_project"]

Say = Callable[[str], None]


def render(value: Any) -> bytes:
    """A file's bytes: two-space indents as in HubSpot's templates, keys in their order, a final newline."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"


@dataclass
class ProjectReport:
    """What a run wrote (or, dry, would write), what it left as it was, and the problems it found."""

    directory: Path
    dry_run: bool = False
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scopes: tuple[str, ...] = ()
    subscriptions: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not (self.dry_run and self.written)

    def summary(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        return (
            f"{verb} {len(self.written)}, unchanged {len(self.unchanged)}, problems {len(self.problems)}: "
            f"{len(self.scopes)} scopes, {self.subscriptions} webhook subscriptions"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "dry_run": self.dry_run,
            "written": self.written,
            "unchanged": self.unchanged,
            "problems": self.problems,
            "scopes": list(self.scopes),
            "subscriptions": self.subscriptions,
        }


def _read(path: Path) -> Any:
    """The file's JSON, or None when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ProjectError(f"{path} is not valid JSON ({error}); fix it or remove it") from None


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(render(value))
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _quiet(_: str) -> None:
    return None


def write_project(
    directory: Path,
    config: SyncConfig,
    settings: Settings,
    *,
    auth: AuthType | None = None,
    redirect_urls: Iterable[str] = (),
    dry_run: bool = False,
    say: Say = _quiet,
) -> ProjectReport:
    """Write or update the project in ``directory`` for ``config``'s enabled steps (module docstring).

    `ProjectError` when it cannot be written as asked: no ``ingest.public_url``, an oauth app without a
    redirect URL, a file that is not JSON or whose shape we cannot merge into, a ``srcDir`` outside it.
    """
    target = settings.ingest.public_url
    if not target:
        raise ProjectError(
            "ingest.public_url (CDC_INGEST__PUBLIC_URL) is required: it is the webhooks' targetUrl, the URL "
            "HubSpot posts to (https://<your host>/webhooks/hubspot)"
        )
    needs = needs_of(config)
    report = ProjectReport(directory, dry_run=dry_run)
    found: dict[Path, Any] = {Path(PROJECT_FILE): _read(directory / PROJECT_FILE)}
    project = hsproject(found[Path(PROJECT_FILE)])
    if bad := [p for p in check_hsproject(project) if ".srcDir" in p]:
        raise ProjectError(f"{directory / PROJECT_FILE}: {bad[0]}")
    src = Path(project["srcDir"])
    found.update({src / name: _read(directory / src / name) for name in (APP_FILE, WEBHOOKS_FILE)})
    report.scopes = required_scopes(config, needs)
    app = app_component(found[src / APP_FILE], report.scopes, auth=auth, redirect_urls=redirect_urls)
    hooks = webhooks_component(found[src / WEBHOOKS_FILE], needs.subscriptions, target_url=target)
    report.subscriptions = len(needs.subscriptions)
    report.problems = check_project(project, app, hooks.component)
    report.problems += [
        f"{src / WEBHOOKS_FILE}: subscription {spec.key} is paused (active: false); set it active, or the "
        "app gets no such events"
        for spec in hooks.paused
    ]
    for relative, content in (
        (Path(PROJECT_FILE), project),
        (src / APP_FILE, app),
        (src / WEBHOOKS_FILE, hooks.component),
    ):
        path = directory / relative
        if found[relative] == content:
            report.unchanged.append(str(relative))
            continue
        report.written.append(str(relative))
        if dry_run:
            say(f"would write {path}")
            continue
        _write(path, content)
        say(f"wrote {path}")
    for problem in report.problems:
        say(f"problem: {problem}")
    return report
