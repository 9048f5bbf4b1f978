"""The configuration checked against the sandbox CRMs' metadata (`cdc config check --against-crm`, and the
start of `cdc sync`): the default configuration passes once provisioned, the standard-fields one on a fresh
portal and org; a broken configuration is refused with one line per problem naming step and field row,
exit 78, and `cdc sync` does not start."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cdc.cli import main
from cdc.crm_metadata import crm_problems
from cdc.metrics import Metrics
from cdc.provisioning.run import provision_sandbox
from cdc.roles.sync import open_gateways
from cdc.sandbox.runner import run_sandbox
from cdc.settings import Settings
from consumers.config import SyncConfig
from consumers.loader import default_config, standard_fields_config
from streams.config import KafkaSettings
from tests.integration.sync_stack import role_env

pytestmark = pytest.mark.usefixtures("restore_root_logger")


async def problems(settings: Settings, config: SyncConfig) -> list[str]:
    async with open_gateways(settings, Metrics(CollectorRegistry())) as gateways:
        return await crm_problems(config, gateways)


@pytest.fixture
async def sandbox_settings() -> AsyncIterator[Settings]:
    async with run_sandbox() as box:
        yield box.daemon_settings(KafkaSettings())


async def test_the_default_configuration_fits_the_provisioned_sandbox(sandbox_settings: Settings) -> None:
    config = default_config()
    await provision_sandbox(sandbox_settings, config)
    assert await problems(sandbox_settings, config) == []


async def test_the_standard_fields_fit_a_fresh_portal_and_org(sandbox_settings: Settings) -> None:
    assert await problems(sandbox_settings, standard_fields_config()) == []


def broken_config() -> dict[str, Any]:
    """The standard-fields configuration with one of each refusal in its companies -> accounts step."""
    raw = standard_fields_config().model_dump(mode="json", exclude_defaults=True)
    step = next(s for s in raw["steps"] if s["name"] == "companies_to_accounts")
    step["fields"] += [
        {"source": "domain", "target": "name"},  # field 4: `name` twice
        {"source": "numberofemployees", "target": "revenue", "target_type": "datetime"},  # 5: a Money column
        {"source": "createdate", "target": "createdon", "source_type": "datetime",
         "target_type": "datetime"},  # 6: read-only
        {"source": "website", "target": "cdc_nosuchcolumn"},  # 7: missing
        {"source": "industry", "target": "industrycode", "source_type": "option", "target_type": "option",
         "options": "industry"},  # 8: an option value the choice does not have
    ]  # fmt: skip
    raw["option_sets"] = {
        "industry": {"hubspot": {"COMPUTER_SOFTWARE": "Software"}, "dataverse": {"999": "Software"}}
    }
    return raw


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(args)
    except SystemExit as done:
        code = int(done.code or 0)
    else:
        code = 0
    return code, capsys.readouterr().err


async def test_config_check_against_the_crms_names_each_refusal(
    sandbox_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in role_env(sandbox_settings).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "sync.yaml"
    text = yaml.safe_dump(broken_config())
    path.write_text(text)

    def at(source: str) -> str:
        """The field row reading ``source``: its line is that of the row's ``- `` (its first key)."""
        lines = text.splitlines()
        index = next(n for n, t in enumerate(lines) if t.strip().removeprefix("- ") == f"source: {source}")
        while not lines[index].lstrip().startswith("- "):
            index -= 1
        line = index + 1
        return f"step 'companies_to_accounts' field {{}} at line {line} ('{source}' -> "

    code, err = await asyncio.to_thread(run_cli, ["config", "check", str(path), "--against-crm"], capsys)
    assert code == 78, err
    assert f"{at('domain').format(4)}'name'): target 'name' is written by field 1 too" in err
    assert (
        f"{at('numberofemployees').format(5)}'revenue'): a datetime cannot be written to "
        "dataverse.account.revenue (Money)" in err
    )
    assert f"{at('createdate').format(6)}'createdon'): dataverse.account.createdon is read-only" in err
    assert (
        f"{at('website').format(7)}'cdc_nosuchcolumn'): dataverse.account has no field 'cdc_nosuchcolumn'"
        in err
    )
    assert (
        f"{at('industry').format(8)}'industrycode'): option set 'industry' lists value(s) 999 that "
        "dataverse.account.industrycode does not have" in err
    )
    assert err.count("step 'companies_to_accounts' field") == 5, err

    # Without --against-crm the file is valid; `cdc sync` runs the same check and does not start.
    assert (await asyncio.to_thread(run_cli, ["config", "check", str(path)], capsys))[0] == 0
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc", "sync", "--sync-config", str(path),
        env=role_env(sandbox_settings), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 78, stderr.decode()
    assert f"{path} against the CRMs: 5 problems" in stderr.decode()
