"""Settings written out as the YAML file ``cdc --config`` reads, secrets and all (a test's sandbox ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr


def _reveal(model: BaseModel, data: dict[str, Any]) -> None:
    """Put each secret's value where ``model_dump`` put its mask, in every section dumped."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr) and name in data:
            data[name] = value.get_secret_value()
        elif isinstance(value, BaseModel) and isinstance(data.get(name), dict):
            _reveal(value, data[name])


def settings_file(settings: BaseModel, path: Path, *, include: set[str]) -> Path:
    """The sections ``include`` of ``settings`` as YAML at ``path``."""
    data = settings.model_dump(mode="json", include=include)
    _reveal(settings, data)
    path.write_text(yaml.safe_dump(data))
    return path
