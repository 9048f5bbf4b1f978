"""`cdc config check` validates the settings with the sync configuration: the Dataverse credential (one of
secret or certificate, the certificate file usable) and the proxy, each refusal one line naming the
setting, exit 78; a good set-up says how the daemon will reach Dataverse."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdc.cli import main
from cdc.sandbox.tls import make_app_certificate

ORG = "https://contoso.crm.dynamics.com"
pytestmark = pytest.mark.usefixtures("restore_root_logger")  # the commands set logging up


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in {
        "CDC_DATAVERSE__BASE_URL": ORG,
        "CDC_DATAVERSE__TENANT_ID": "00000000-0000-0000-0000-000000000001",
        "CDC_DATAVERSE__CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def check(
    capsys: pytest.CaptureFixture[str],
    env: pytest.MonkeyPatch | None = None,
    *,
    file: str = "",
    **variables: str,
) -> tuple[int, str, str]:
    """`cdc config check [file]` with ``variables`` set: exit code, stdout, stderr."""
    for name, value in variables.items():
        assert env is not None
        env.setenv(name, value)
    try:
        main(["config", "check", *([file] if file else [])])
    except SystemExit as done:
        code = int(done.code or 0)
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


def test_a_certificate_and_a_proxy_are_described(
    org: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_app_certificate(tmp_path / "app.pem")
    code, out, err = check(
        capsys,
        org,
        CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH=str(made.pem),
        CDC_DATAVERSE__PROXY__URL="http://proxy.corp:3128",
        CDC_DATAVERSE__PROXY__USERNAME="svc",
        CDC_DATAVERSE__PROXY__PASSWORD="proxy-pass-1",
    )
    assert code == 0, err
    assert f"dataverse {ORG}: certificate {made.sha1}, valid until " in out
    assert ", proxy http://proxy.corp:3128" in out
    assert "proxy-pass-1" not in out + err
    assert out.splitlines()[-1].startswith("ok: ")


def test_trust_env_shows_the_proxy_the_environment_names(
    org: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(
        capsys,
        org,
        CDC_DATAVERSE__CLIENT_SECRET="s3cret-value",
        CDC_DATAVERSE__TRUST_ENV="true",
        HTTPS_PROXY="http://user:env-pass-2@proxy.env:8080",
    )
    assert code == 0, err
    assert f"dataverse {ORG}: client secret, proxy http://proxy.env:8080" in out
    assert "env-pass-2" not in out + err
    assert "s3cret-value" not in out + err


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "dataverse.client_secret (CDC_DATAVERSE__CLIENT_SECRET) or dataverse.client_certificate_path"),
        (
            {"CDC_DATAVERSE__CLIENT_SECRET": "s", "CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH": "/x.pem"},
            "set dataverse.client_secret or dataverse.client_certificate_path, not both",
        ),
        ({"CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH": "/nowhere/app.pem"}, "cannot read /nowhere/app.pem"),
        (
            {"CDC_DATAVERSE__CLIENT_SECRET": "s", "CDC_DATAVERSE__PROXY__URL": "https://proxy:3128"},
            "dataverse.proxy.url (CDC_DATAVERSE__PROXY__URL): Value error, must be an http:// URL",
        ),
        (
            {
                "CDC_DATAVERSE__CLIENT_SECRET": "s",
                "CDC_DATAVERSE__TRUST_ENV": "1",
                "HTTPS_PROXY": "socks5://p:1",
            },
            "HTTPS_PROXY must name an HTTP proxy",
        ),
    ],
)
def test_an_unusable_credential_or_proxy_is_one_line_and_exit_78(
    org: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], says: str
) -> None:
    code, out, err = check(capsys, org, **env)
    assert code == 78
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("cdc: error: ")
    assert says in line


def test_an_expired_certificate_fails_the_check(
    org: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import timedelta  # noqa: PLC0415

    made = make_app_certificate(tmp_path / "app.pem", valid_for=timedelta(seconds=-1))
    code, _, err = check(capsys, org, CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH=str(made.pem))
    assert code == 78
    assert "expired on" in err


def test_without_an_org_only_the_steps_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys)
    assert code == 0
    assert "dataverse" not in out.splitlines()[-1]
    assert not any(line.startswith("dataverse ") for line in out.splitlines())


def test_cdc_sync_with_an_unusable_certificate_stops_in_one_line_with_78(
    org: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not only the check: a role given a certificate it cannot use stops at start-up with the reason
    (before any Kafka or network call), as `cdc poll` does, never with a traceback."""
    org.setenv("CDC_HUBSPOT__TOKEN", "pat-na1-00000000-0000-0000-0000-000000000000")
    org.setenv("CDC_HUBSPOT__PORTAL_ID", "123")
    org.setenv("CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH", "/nowhere/app.pem")
    with pytest.raises(SystemExit) as done:
        main(["sync"])
    _, err = capsys.readouterr()
    assert done.value.code == 78
    (line,) = err.strip().splitlines()
    assert line.startswith("cdc: error: DataverseAuthError: ")
    assert "dataverse.client_certificate_path (CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH): cannot read" in line
