"""`cdc admin hash-password` and `cdc admin` refusing to start with nobody to log in."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cdc import cli
from cdc.admin import verify_password
from cdc.exits import CliError, ExitCode


def test_hash_password_reads_the_password_twice_unechoed_and_prints_a_hash_that_verifies() -> None:
    result = CliRunner().invoke(
        cli.cli, ["admin", "hash-password", "--user", "ada"], input="a fine password\n" * 2
    )
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    name, hashed = line.split(": ", 1)
    assert name == "ada"
    assert verify_password("a fine password", hashed)
    assert "a fine password" not in result.output


def test_hash_password_refuses_a_short_password() -> None:
    result = CliRunner().invoke(cli.cli, ["admin", "hash-password"], input="short\nshort\n")
    assert isinstance(result.exception, CliError)
    assert result.exception.code is ExitCode.USAGE
    assert "fewer than 12 characters" in str(result.exception)


def test_admin_without_users_exits_78_saying_how_to_add_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["admin"])
    assert done.value.code == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "admin.users (CDC_ADMIN__USERS) names no user" in err
    assert "cdc admin hash-password" in err
