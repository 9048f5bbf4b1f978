"""What the ``cdc`` commands print around their work: a settings error never shows a credential, logs
come in ``log.format`` from every role, and `cdc demo` logs at ``log.level``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cdc import cli
from cdc.exits import ExitCode
from cdc.tools.devkafka import runner

# Shapes of real credentials (made up): a HubSpot private-app token, an Entra ID client secret, a JWT
# access token, a hex webhook secret.
HUBSPOT_TOKEN = "pat-na1-6f1c2a9e-0b7d-4c55-9a1e-2f3b4c5d6e7f"
CLIENT_SECRET = "Qx8Q~f3kLm9pZr2VtY7uWb4nHs6dJc1aEg5oKi0"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL2NvbnRvc28uY3JtLmR5bmFtaWNzLmNvbSJ9"
    ".c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
)
HEX_SECRET = "9f86d081884c7d659a2feaa0c55ad015"
SECRETS = (HUBSPOT_TOKEN, CLIENT_SECRET, JWT, HEX_SECRET)


def _pieces(secret: str) -> list[str]:
    """The secret and its distinctive parts: a message that cut it up must not show those either."""
    parts = [part for part in secret.replace("~", "-").replace(".", "-").split("-") if len(part) >= 8]
    return [secret, *parts]


def _assert_hidden(output: str) -> None:
    for secret in SECRETS:
        for piece in _pieces(secret):
            assert piece not in output, f"{piece!r} of a credential was printed:\n{output}"


pytestmark = pytest.mark.usefixtures("restore_root_logger")


YAML_CASES = {
    "misspelt key under hubspot": f"hubspot:\n  tokn: {HUBSPOT_TOKEN}\n",
    "token under the wrong hubspot key": f"hubspot:\n  app_id: {HUBSPOT_TOKEN}\n",
    "hubspot section as a string": f"hubspot: {HUBSPOT_TOKEN}\n",
    "misspelt key under dataverse": f"dataverse:\n  client_secrt: '{CLIENT_SECRET}'\n",
    "misspelt key under kafka": f"kafka:\n  sasl_pasword: {HEX_SECRET}\n",
    "misspelt top-level section": f"hubspott:\n  token: {HUBSPOT_TOKEN}\n",
    "token-shaped value in a plain section": f"ingest:\n  webhook_secrte: {HEX_SECRET}\n  port: {JWT}\n",
    "list of tokens in a plain section": (
        f"poll:\n  hubspot_objects: [{CLIENT_SECRET!r}, 1]\n  port: [{JWT}]\n"
    ),
    "YAML syntax error on the token's line": f"hubspot:\n  token: {HUBSPOT_TOKEN}: {JWT}\n",
    "YAML syntax error after the token": f"hubspot:\n  token: '{HUBSPOT_TOKEN}\n  app_id: 1\n",
}

ENV_CASES = {
    "misspelt variable": {"CDC_HUBSPOT__TOKN": HUBSPOT_TOKEN},
    "token in the wrong hubspot variable": {"CDC_HUBSPOT__APP_ID": HUBSPOT_TOKEN},
    "hubspot section as JSON with a misspelt key": {
        "CDC_HUBSPOT": orjson.dumps({"tokn": HUBSPOT_TOKEN}).decode()
    },
    "hubspot section that is not JSON": {"CDC_HUBSPOT": f"token={HUBSPOT_TOKEN}"},
    "dataverse secret in a number": {"CDC_DATAVERSE__REQUEST_TIMEOUT_S": CLIENT_SECRET},
    "kafka password in an enum": {"CDC_KAFKA__SECURITY_PROTOCOL": HEX_SECRET},
    "JWT in a plain section": {"CDC_INGEST__PORT": JWT},
    "plain section as JSON with a token": {"CDC_SYNC": orjson.dumps({"dry_rn": CLIENT_SECRET}).decode()},
}


def _run_in_process(
    argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> tuple[int, str]:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    captured = capsys.readouterr()
    code = exited.value.code
    assert isinstance(code, int)
    return code, captured.out + captured.err + caplog.text


@pytest.mark.parametrize("text", YAML_CASES.values(), ids=YAML_CASES.keys())
@pytest.mark.parametrize("command", [["topics", "describe"], ["ingest"], ["sync"], ["poll"], ["demo"]])
def test_a_token_in_a_wrong_yaml_setting_is_in_no_output(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    text: str,
    command: list[str],
) -> None:
    config = tmp_path / "cdc.yaml"
    config.write_text(text)
    code, output = _run_in_process(["--config", str(config), *command], capsys, caplog)
    assert code == ExitCode.CONFIG
    assert output.startswith("cdc: error: ")
    assert str(config) in output  # the error still says where to look
    _assert_hidden(output)


@pytest.mark.parametrize("env", ENV_CASES.values(), ids=ENV_CASES.keys())
@pytest.mark.parametrize("command", [["topics", "describe"], ["ingest"], ["status"]])
def test_a_token_in_a_wrong_variable_is_in_no_output(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    env: dict[str, str],
    command: list[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, output = _run_in_process(command, capsys, caplog)
    assert code == ExitCode.CONFIG
    assert output.startswith("cdc: error: ")
    _assert_hidden(output)


def test_the_installed_command_keeps_a_misplaced_token_out_of_stdout_and_stderr(tmp_path: Path) -> None:
    """The same through the real entry point in a process of its own: YAML and environment at once."""
    config = tmp_path / "cdc.yaml"
    config.write_text(f"log:\n  format: json\n  level: DEBUG\nhubspot:\n  tokn: {HUBSPOT_TOKEN}\n")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CDC_")}
    env["CDC_DATAVERSE__REQUEST_TIMEOUT_S"] = CLIENT_SECRET
    done = subprocess.run(
        [sys.executable, "-m", "cdc", "--config", str(config), "ingest"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.CONFIG, done.stderr
    assert "hubspot.tokn" in done.stderr
    assert "dataverse.request_timeout_s (CDC_DATAVERSE__REQUEST_TIMEOUT_S" in done.stderr
    _assert_hidden(done.stdout + done.stderr)


def test_a_role_logs_json_lines_when_log_format_is_json() -> None:
    """`cdc ingest` with no broker to reach: each log line it writes before it gives up is a JSON object."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CDC_")}
    env |= {
        "CDC_LOG__FORMAT": "json",
        "CDC_HUBSPOT__CLIENT_SECRET": HEX_SECRET,
        "CDC_HUBSPOT__PORTAL_ID": "12345",
        "CDC_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nothing listens on port 1
        "CDC_INGEST__PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cdc", "ingest"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    *logged, last = done.stderr.splitlines()
    assert last.startswith("cdc: error: ")
    assert "127.0.0.1" in last
    assert logged, "the producer's failed connection should have been logged"
    for line in logged:
        record = orjson.loads(line)
        assert {"timestamp", "level", "logger", "message"} <= record.keys()
    assert any(orjson.loads(line)["logger"].startswith("aiokafka") for line in logged)
    _assert_hidden(done.stdout + done.stderr)


class _StartedError(Exception):
    """Raised where the demo would start Kafka: the logging set-up is done by then."""


@pytest.mark.parametrize(
    ("level", "expected"),
    [(None, logging.WARNING), ("DEBUG", logging.DEBUG), ("INFO", logging.INFO), ("ERROR", logging.ERROR)],
)
def test_demo_logs_at_log_level_when_it_is_set(
    monkeypatch: pytest.MonkeyPatch, level: str | None, expected: int
) -> None:
    seen: list[int] = []

    def local_kafka(**_: object) -> None:
        seen.append(logging.getLogger().level)
        raise _StartedError

    monkeypatch.setattr(runner, "LocalKafka", local_kafka)  # the CLI imports the tool when the demo starts
    if level is not None:
        monkeypatch.setenv("CDC_LOG__LEVEL", level)
    with pytest.raises(_StartedError):
        cli.cli.main(args=["demo", "--once"], prog_name="cdc", standalone_mode=False)
    assert seen == [expected]
