"""The deployment assets: Dockerfile, docker-compose.yml, Prometheus rules, the Grafana dashboard, the
Kubernetes manifests and the runbook they point to.

No Docker engine runs on our machines, so nothing is started here: each asset is checked by the tool that
owns its format where that tool installs (`docker-compose config`, `promtool`, `kubectl kustomize`, the
`kubernetes-validate` schemas), and against the code it describes (the settings tree, the metrics catalog,
the default sync configuration). A missing tool skips its tests with the reason; `scripts/bootstrap.sh`
installs promtool and docker-compose, the dev extras install kubernetes-validate.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from cdc.settings import AdminSettings, IngestSettings, PollSettings, SyncSettings, load_settings, unknown_env
from consumers.loader import load_config
from streams.config import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
K8S = ROOT / "deploy" / "k8s"
RUNBOOK = ROOT / "docs" / "runbook.md"
ROLE_PORTS = {"ingest": IngestSettings().port, "poll": PollSettings().port, "sync": SyncSettings().port}
CDC_VARIABLE = re.compile(r"\bCDC_[A-Z0-9_]*[A-Z0-9]\b")
METRIC_NAME = re.compile(r"\bcdc_[a-z0-9_]+\b")

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian package `prometheus`; scripts/bootstrap.sh installs it)",
)
needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose not installed (Debian package `docker-compose`; scripts/bootstrap.sh installs it)",
)
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl not installed (its built-in kustomize renders deploy/k8s)",
)


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _yaml_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _load_generator() -> ModuleType:
    path = GRAFANA / "build_dashboard.py"
    spec = importlib.util.spec_from_file_location("build_dashboard", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> Iterator[ModuleType]:
    module = _load_generator()
    yield module
    sys.modules.pop("build_dashboard", None)


@pytest.fixture(scope="module")
def catalog_series(generator: ModuleType) -> set[str]:
    """Every series name a scrape of `cdc.metrics.Metrics` can return."""
    series: set[str] = generator.series_names(generator.catalog())
    return series


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    return {
        _slug(line.lstrip("#"))
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


def _without_cdc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CDC_"):
            monkeypatch.delenv(name)


# --- Dockerfile -----------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_dockerfile_builds_on_slim_python_311_with_pip_install_dot() -> None:
    instructions = _dockerfile_instructions()
    bases = [args.split()[0] for word, args in instructions if word == "FROM"]
    assert bases, "no FROM"
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    assert any(word == "RUN" and re.search(r"pip install \.(\s|$)", args) for word, args in instructions)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for word, args in _final_stage() if word == "USER"]
    assert users, "the final stage sets no USER, so it runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # numeric, so Kubernetes' runAsNonRoot can verify it, and the same uid the manifests run as
    assert user.isdigit()
    for path in K8S.glob("*.yaml"):
        for doc in _yaml_all(path):
            for pod in _pod_specs(doc):
                assert str(pod["securityContext"]["runAsUser"]) == user, path.name


def test_dockerfile_has_a_healthcheck_on_healthz_and_cdc_entrypoint() -> None:
    stage = _final_stage()
    checks = [args for word, args in stage if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0]
    assert "urllib" in checks[0]
    entrypoints = [args for word, args in stage if word == "ENTRYPOINT"]
    assert entrypoints == ['["cdc"]']


class _Healthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads exit codes, not access logs."""


def test_dockerfile_healthcheck_command_probes_health_port() -> None:
    """Run the HEALTHCHECK's command itself: 0 against a live /healthz on HEALTH_PORT, non-zero without."""
    check = next(args for word, args in _final_stage() if word == "HEALTHCHECK")
    command = check.split(" CMD ", 1)[1]
    program, _, fallback = command.partition(" || ")
    assert fallback == "exit 1"  # any failure of the probe is "unhealthy" (exit 1), never another code
    argv = shlex.split(program)
    assert argv[:2] == ["python", "-c"]
    argv[0] = sys.executable
    server = HTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = str(server.server_address[1])
        up = _run(argv, env={**os.environ, "HEALTH_PORT": port})
        assert up.returncode == 0, up.stderr
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    down = _run(argv, env={**os.environ, "HEALTH_PORT": port})
    assert down.returncode != 0


def test_dockerignore_keeps_secrets_and_the_venv_out_but_the_sources_in() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", ".git"} <= patterns
    copied = {"pyproject.toml", "README.md", "cdc", "streams", "consumers"}
    assert not copied & patterns


# --- docker-compose -------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(COMPOSE)
    return loaded


@needs_compose
@pytest.mark.parametrize("profile", [None, "sandbox"])
def test_compose_file_validates_with_the_example_env(profile: str | None) -> None:
    argv = ["docker-compose", "--env-file", str(ENV_EXAMPLE)]
    if profile:
        argv += ["--profile", profile]
    result = _run([*argv, "config", "-q"], env={**os.environ, "STACK_ENV_FILE": str(ENV_EXAMPLE)})
    assert result.returncode == 0, result.stderr


@needs_compose
def test_compose_resolves_every_service() -> None:
    result = _run(
        ["docker-compose", "--env-file", str(ENV_EXAMPLE), "--profile", "sandbox", "config", "--services"],
        env={**os.environ, "STACK_ENV_FILE": str(ENV_EXAMPLE)},
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {
        "kafka",
        "topics",
        "ingest",
        "poll",
        "sync",
        "admin",
        "sandbox",
        "prometheus",
        "grafana",
    }


def test_compose_runs_kafka_in_kraft_mode_with_a_healthcheck() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "test" in kafka["healthcheck"]


def test_compose_bootstraps_topics_before_the_roles_start() -> None:
    services = _compose()["services"]
    topics = services["topics"]
    assert topics["command"] == ["topics", "ensure"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    for role in ROLE_PORTS:
        assert services[role]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("role", sorted(ROLE_PORTS))
def test_compose_role_listens_where_prometheus_and_the_healthcheck_look(role: str) -> None:
    service = _compose()["services"][role]
    port = ROLE_PORTS[role]
    env = service["environment"]
    assert service["command"] == [role]
    assert service["build"] == "."
    assert env[f"CDC_{role.upper()}__HOST"] == "0.0.0.0"  # noqa: S104 -- inside the container, on purpose
    assert int(env[f"CDC_{role.upper()}__PORT"]) == port
    assert int(env["HEALTH_PORT"]) == port
    assert env["CDC_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert service["env_file"] == "${STACK_ENV_FILE:-.env}"
    assert f"{role}:{port}" in _scrape_targets()[f"cdc-{role}"]


def test_compose_sandbox_is_behind_its_profile_and_posts_to_ingest() -> None:
    sandbox = _compose()["services"]["sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    assert sandbox["command"][0] == "sandbox"
    assert f"--webhook-url=http://ingest:{ROLE_PORTS['ingest']}/webhooks/hubspot" in sandbox["command"]


def test_compose_mounts_prometheus_rules_and_grafana_provisioning() -> None:
    services = _compose()["services"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    grafana_volumes = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_volumes
    provider = _yaml(GRAFANA / "provisioning" / "dashboards" / "cdc.yml")["providers"][0]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana_volumes


def test_env_example_carries_no_secret_values() -> None:
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("CDC_"):
            name = line.split("=", 1)[0]
            assert not re.search(r"TOKEN|SECRET|PASSWORD", name), f"{name} must stay commented out"


def test_env_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommented, the example values load: names exist, types parse, the Kafka SASL block is complete."""
    _without_cdc_env(monkeypatch)
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#?\s*(CDC_[A-Z0-9_]+)=(.*)", line)
        if match:
            monkeypatch.setenv(match.group(1), match.group(2))
    settings = load_settings()
    assert settings.hubspot.token is not None
    assert settings.dataverse.base_url == "https://contoso.crm.dynamics.com"


def test_every_cdc_variable_in_the_assets_is_a_setting() -> None:
    """The daemon refuses unknown CDC_ variables; a typo in an asset would stop it at start-up."""
    files = [COMPOSE, ENV_EXAMPLE, ROOT / "Dockerfile", *sorted(K8S.glob("*.yaml")), K8S / "secret-keys.md"]
    names = {name for path in files for name in CDC_VARIABLE.findall(path.read_text(encoding="utf-8"))}
    assert len(names) > 10
    assert unknown_env(dict.fromkeys(names, "x")) == []


# --- Prometheus -----------------------------------------------------------------------------------


def _scrape_targets() -> dict[str, list[str]]:
    config = _yaml(PROMETHEUS / "prometheus.yml")
    return {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }


def _alert_rules() -> list[dict[str, Any]]:
    groups = _yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_promtool_accepts_the_prometheus_config() -> None:
    result = _run(["promtool", "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    result = _run(["promtool", "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    result = _run(["promtool", "test", "rules", str(PROMETHEUS / "alerts_test.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing() -> None:
    tests = _yaml(PROMETHEUS / "alerts_test.yml")["tests"]
    fired = {
        check["alertname"] for test in tests for check in test["alert_rule_test"] if check.get("exp_alerts")
    }
    assert {rule["alert"] for rule in _alert_rules()} <= fired


def test_every_alert_has_summary_description_and_a_runbook_anchor() -> None:
    anchors = _runbook_anchors()
    rules = _alert_rules()
    assert len(rules) >= 10
    for rule in rules:
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert annotations["description"].strip(), rule["alert"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/runbook.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/runbook.md has no heading for {rule['alert']}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_alert_expressions_name_catalog_metrics(catalog_series: set[str]) -> None:
    for rule in _alert_rules():
        names = set(METRIC_NAME.findall(rule["expr"]))
        assert names <= catalog_series, f"{rule['alert']}: {sorted(names - catalog_series)}"


def test_alerts_cover_the_brief() -> None:
    """The metrics the issue names each drive an alert."""
    exprs = " ".join(rule["expr"] for rule in _alert_rules())
    for metric in (
        "cdc_last_progress_timestamp_seconds",
        "cdc_sync_latency_seconds",
        "cdc_sync_deadletters_total",
        'cdc_webhook_requests_total{status=~"5.."}',
        'cdc_webhook_requests_total{status="401"}',
        "cdc_poll_last_success_timestamp_seconds",
        "cdc_api_throttled_total",
        "cdc_delta_token_resets_total",
        "cdc_checkpoint_age_seconds",
    ):
        assert metric in exprs


def test_prometheus_scrapes_every_role_and_loads_the_rules() -> None:
    config = _yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    targets = _scrape_targets()
    for role, port in ROLE_PORTS.items():
        assert targets[f"cdc-{role}"] == [f"{role}:{port}"]


# --- Grafana --------------------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(GRAFANA / "dashboards" / "cdc.json")  # JSON is YAML
    return loaded


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboard_json_is_the_generators_output(generator: ModuleType) -> None:
    committed = (GRAFANA / "dashboards" / "cdc.json").read_text(encoding="utf-8")
    assert committed == generator.render(), "stale: run .venv/bin/python deploy/grafana/build_dashboard.py"


def test_dashboard_queries_name_only_catalog_metrics(catalog_series: set[str]) -> None:
    queries = _queries(_dashboard())
    assert queries
    for query in queries:
        names = set(METRIC_NAME.findall(query))
        assert names, f"query names no cdc_ metric: {query}"
        assert names <= catalog_series, f"{query}: {sorted(names - catalog_series)}"


def test_dashboard_shows_every_catalog_metric(generator: ModuleType) -> None:
    shown = " ".join(_queries(_dashboard()))
    families: dict[str, str] = generator.catalog()
    for name in families:
        assert re.search(rf"\b{name}(_total|_bucket|_count|_sum)?\b", shown), f"{name} is on no panel"


def test_dashboard_has_the_operations_rows() -> None:
    rows = [panel["title"] for panel in _dashboard()["panels"] if panel["type"] == "row"]
    for wanted in ("Ingest", "Lag and progress", "Sync latency by step", "Writes and errors"):
        assert wanted in rows
    assert any("API" in row for row in rows)
    assert any("Dead letters" in row for row in rows)


def test_generator_refuses_a_query_on_an_unknown_metric(generator: ModuleType) -> None:
    bogus = generator.Row("x", [generator.Panel("x", (("rate(cdc_no_such_thing_total[5m])", ""),))])
    with pytest.raises(ValueError, match="cdc_no_such_thing_total"):
        generator.with_uncovered([bogus], generator.catalog())


def test_grafana_data_source_is_the_one_the_dashboard_defaults_to() -> None:
    source = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    variable = _dashboard()["templating"]["list"][0]
    assert variable["type"] == "datasource"
    assert variable["current"]["value"] == source["uid"]


# --- Kubernetes -----------------------------------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(K8S / "kustomization.yaml")
    return loaded


def _generated_config_maps() -> list[dict[str, Any]]:
    """What kustomize's configMapGenerator makes of the kustomization (without the name hash)."""
    maps = []
    for generator in _kustomization()["configMapGenerator"]:
        data: dict[str, str] = {}
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        for entry in generator.get("files", []):
            key, _, source = entry.rpartition("=")
            path = K8S / source
            data[key or path.name] = path.read_text(encoding="utf-8")
        maps.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    return maps


def _settings_literals() -> dict[str, str]:
    (generator,) = [g for g in _kustomization()["configMapGenerator"] if g["name"] == "cdc-settings"]
    return dict(item.split("=", 1) for item in generator["literals"])


def _env_items(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every `env` entry of every container of every pod template."""
    for doc in docs:
        for pod in _pod_specs(doc):
            for container in pod["containers"]:
                yield from container.get("env", [])


def _resources() -> list[dict[str, Any]]:
    docs = [doc for name in _kustomization()["resources"] for doc in _yaml_all(K8S / name)]
    return docs + _generated_config_maps()


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") in {"Deployment", "Job"}:
        return [doc["spec"]["template"]["spec"]]
    return []


def _deployments() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in _resources() if doc["kind"] == "Deployment"}


def _validate_all(docs: list[dict[str, Any]]) -> None:
    validator = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (pip install -e '.[dev]')"
    )
    version = validator.latest_version()
    for doc in docs:
        try:
            validator.validate(doc, version, strict=True)
        except validator.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")


def test_k8s_resources_validate_against_the_kubernetes_schemas() -> None:
    docs = _resources()
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "Ingress", "ConfigMap", "PodDisruptionBudget", "Job"} <= kinds
    _validate_all(docs)


@needs_kubectl
def test_kustomize_build_validates_and_carries_the_default_sync_config() -> None:
    result = _run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(K8S)])
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    _validate_all(docs)
    assert all(doc["metadata"].get("namespace") == "crm-cdc" for doc in docs if doc["kind"] != "Namespace")
    sync_config = next(d for d in docs if d["kind"] == "ConfigMap" and "sync-config" in d["metadata"]["name"])
    assert sync_config["data"]["sync.yaml"] == (ROOT / "consumers" / "default_steps.yaml").read_text("utf-8")
    sync = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "cdc-sync")
    volumes = sync["spec"]["template"]["spec"]["volumes"]
    assert sync_config["metadata"]["name"] in {v.get("configMap", {}).get("name") for v in volumes}


def test_k8s_replicas_follow_the_scaling_rules() -> None:
    deployments = _deployments()
    assert set(deployments) == {"cdc-ingest", "cdc-poll", "cdc-sync", "cdc-admin"}
    assert deployments["cdc-ingest"]["spec"]["replicas"] == 2
    assert deployments["cdc-poll"]["spec"]["replicas"] == 2
    literals = _settings_literals()
    partitions = int(literals.get("CDC_KAFKA__PARTITIONS", KafkaSettings().partitions))
    assert 1 <= deployments["cdc-sync"]["spec"]["replicas"] <= partitions


@pytest.mark.parametrize("role", sorted(ROLE_PORTS))
def test_k8s_role_probes_resources_and_security(role: str) -> None:
    deployment = _deployments()[f"cdc-{role}"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"] == [role]
    assert container["ports"] == [{"name": "http", "containerPort": ROLE_PORTS[role], "protocol": "TCP"}]
    env = {item["name"]: item for item in container["env"]}
    assert env[f"CDC_{role.upper()}__PORT"]["value"] == str(ROLE_PORTS[role])
    assert env[f"CDC_{role.upper()}__HOST"]["value"] == "0.0.0.0"  # noqa: S104 -- inside the pod, on purpose
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ROLE_PORTS[role])


def test_k8s_credentials_are_references_only() -> None:
    resources = _resources()
    assert not [doc for doc in resources if doc["kind"] == "Secret"]
    keys = (K8S / "secret-keys.md").read_text(encoding="utf-8")
    secret_refs = 0
    for item in _env_items(resources):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if re.search(r"TOKEN|SECRET|PASSWORD", item["name"]):
            assert "value" not in item, item["name"]
            assert ref is not None, item["name"]
        if ref:
            assert ref["name"] == "cdc-credentials"
            assert f"`{ref['key']}`" in keys, f"secret-keys.md does not list {ref['key']}"
            secret_refs += 1
    assert secret_refs >= 6


def test_k8s_every_deployment_has_a_disruption_budget_selecting_it() -> None:
    budgets = {doc["metadata"]["name"]: doc for doc in _resources() if doc["kind"] == "PodDisruptionBudget"}
    for name, deployment in _deployments().items():
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


def test_k8s_ingress_routes_the_webhook_path_to_ingest() -> None:
    resources = _resources()
    (ingress,) = [doc for doc in resources if doc["kind"] == "Ingress"]
    (path,) = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert path["path"] == "/webhooks/hubspot"
    backend = path["backend"]["service"]
    (service,) = [
        doc for doc in resources if doc["kind"] == "Service" and doc["metadata"]["name"] == backend["name"]
    ]
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    ingest_labels = _deployments()["cdc-ingest"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= ingest_labels.items()


def test_k8s_admin_page_is_a_cluster_service_with_its_users_and_session_secret_from_the_secret() -> None:
    """Issue 18: the page is reached through a Service (TLS: deploy/README.md);
    its users and session secret are Secret references, so every replica gets the same secret."""
    resources = _resources()
    deployment = _deployments()["cdc-admin"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["admin"]
    env = {item["name"]: item for item in container["env"]}
    assert env["CDC_ADMIN__PORT"]["value"] == str(AdminSettings().port)
    for name, key in [
        ("CDC_ADMIN__USERS", "admin-users"),
        ("CDC_ADMIN__SESSION_SECRET", "admin-session-secret"),
    ]:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "cdc-credentials", "key": key}
    assert "CDC_ADMIN__SECURE_COOKIES" not in env, "behind TLS the cookies stay Secure-only"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    (service,) = [d for d in resources if d["kind"] == "Service" and d["metadata"]["name"] == "cdc-admin"]
    assert service["spec"]["type"] == "ClusterIP"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    readme = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    assert "The admin page behind TLS" in readme


@pytest.mark.parametrize("role", ["sync", "poll"])
def test_k8s_sync_config_is_the_default_steps_file_mounted_where_the_setting_points(role: str) -> None:
    """`cdc poll` reads it too: what it polls follows from the enabled steps."""
    (generator,) = [g for g in _kustomization()["configMapGenerator"] if g["name"] == "cdc-sync-config"]
    key, _, source = generator["files"][0].partition("=")
    assert (K8S / source).resolve() == (ROOT / "consumers" / "default_steps.yaml").resolve()
    assert load_config(K8S / source).steps
    pod = _deployments()[f"cdc-{role}"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "sync-config")
    volume = next(v for v in pod["volumes"] if v["name"] == "sync-config")
    assert volume["configMap"]["name"] == "cdc-sync-config"
    assert env["CDC_SYNC__CONFIG"] == f"{mount['mountPath']}/{key}"


def test_k8s_settings_load_as_the_daemon_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap's literals plus each role's plain env values (secrets filled in) are valid settings."""
    literals = _settings_literals()
    for deployment in _deployments().values():
        _without_cdc_env(monkeypatch)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        values = dict(literals)
        for item in container["env"]:
            users = item["name"] == "CDC_ADMIN__USERS"  # a JSON object: name -> hash
            made_up = '{"ada": "scrypt$1$1$1$x$y"}' if users else "made-up-secret"
            values[item["name"]] = item.get("value", made_up)
        values.pop("CDC_KAFKA__SASL_PASSWORD")  # optional: only with SASL_SSL and a mechanism
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        assert settings.kafka.bootstrap_servers == literals["CDC_KAFKA__BOOTSTRAP_SERVERS"]


# --- runbook --------------------------------------------------------------------------------------


def test_runbook_covers_the_operations_the_issue_names() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    anchors = _runbook_anchors()
    for anchor in (
        "hubspot-outage",
        "dataverse-outage",
        "kafka-outage",
        "expired-delta-tokens",
        "dead-letter-triage",
        "resync-after-a-configuration-change",
        "scaling-out",
    ):
        assert anchor in anchors, anchor
    for command in (
        "cdc deadletter list",
        "cdc deadletter show",
        "cdc deadletter redrive",
        "cdc replay",
        "cdc resync",
    ):
        assert command in text, command
