"""What every command is handed: the settings, read once on first use (`State`), and the two outputs,
results on stdout (`echo_json`) and progress on stderr (`say`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson

from cdc.logs import setup_logging
from cdc.settings import Settings, load_settings

__all__ = ["State", "echo_json", "say", "sync_config_option"]

sync_config_option = click.option(
    "--sync-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sync configuration YAML (default: sync.config, else the seeds' standard set-up).",
)
"""The sync configuration a command reads (`cdc sync`, `cdc provision`)."""


@dataclass
class State:
    config_file: Path | None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            setup_logging(self._settings.log, default_level="WARNING")
        return self._settings


def echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def say(message: str) -> None:
    click.echo(message, err=True)
