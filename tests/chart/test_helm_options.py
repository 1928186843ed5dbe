"""The chart's optional parts: the web config (TLS and basic auth on the exporter's endpoints)
with the kubelet's probes on a plain health port, the Cassandra password from a mounted file,
ServiceMonitor TLS and basic auth, the NetworkPolicy and sharding as a StatefulSet. Each CI
values file is also linted, validated by kubeconform and its config checked (test_helm.py)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import Config, ServerConfig
from tests.chart.test_helm import (
    NAMESPACE,
    PASSWORD_ENV,
    RELEASE,
    Chart,
    Rendered,
    check_config,
    ci,
    kubeconform,
    mount,
    render_notes,
    secret_env,
)

FULLNAME = f"{RELEASE}-cqrs-exporter"
WEB_CONFIG = "/etc/cqrs-exporter/web/web-config.yml"
PASSWORD_FILE = "/etc/cqrs-exporter/cassandra/password"
BASE_WEB: dict[str, Any] = {"web": {"config": {}, "existingSecret": ""}}


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Chart:
    return Chart(tmp_path_factory.mktemp("helm-home-options"))


def annotations(rendered: Rendered) -> dict[str, str]:
    return rendered.pod["metadata"]["annotations"]  # type: ignore[no-any-return]


def arg(rendered: Rendered, option: str) -> str:
    args = rendered.container["args"]
    return str(args[args.index(option) + 1])


def probe_ports(rendered: Rendered) -> set[str]:
    container = rendered.container
    return {container[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe")}


def main_service(rendered: Rendered) -> dict[str, Any]:
    (service,) = [s for s in rendered.of_kind("Service") if s["metadata"]["name"] == FULLNAME]
    return service


def web_config(rendered: Rendered) -> dict[str, Any]:
    """The web config in the Secret the chart makes."""
    name = f"{FULLNAME}-web"
    (secret,) = [s for s in rendered.of_kind("Secret") if s["metadata"]["name"] == name]
    text = base64.b64decode(secret["data"]["web-config.yml"]).decode()
    return yaml.safe_load(text)  # type: ignore[no-any-return]


# --- the web config -------------------------------------------------------------------------


def test_the_web_config_is_a_secret_mounted_read_only_and_given_to_serve(chart: Chart) -> None:
    rendered = chart.render(ci("web-tls"))
    web = web_config(rendered)
    # The values' web config, with the mounted certificate's paths filled in.
    assert web["tls_server_config"] == {
        "cert_file": "/etc/cqrs-exporter/web/tls.crt",
        "key_file": "/etc/cqrs-exporter/web/tls.key",
        "client_ca_file": "/etc/cqrs-exporter/web/ca.crt",
        "client_auth_type": "RequireAndVerifyClientCert",
        "min_version": "TLS12",
    }
    assert set(web["basic_auth_users"]) == {"prometheus"}
    assert web["basic_auth_users"]["prometheus"].startswith("$2y$10$")
    assert web["http_server_config"]["headers"]["Strict-Transport-Security"].startswith("max-age")
    assert arg(rendered, "--web.config.file") == WEB_CONFIG
    projected = rendered.projected()
    assert projected[WEB_CONFIG] == ("secret", f"{FULLNAME}-web", "web-config.yml")
    files = {"cert_file": "tls.crt", "key_file": "tls.key", "client_ca_file": "ca.crt"}
    for field, key in files.items():
        path = web["tls_server_config"][field]
        assert projected[path] == ("secret", "cqrs-exporter-serving-tls", key)
    (volume_mount,) = [m for m in rendered.container["volumeMounts"] if m["name"] == "config"]
    assert volume_mount["readOnly"] is True
    assert "subPath" not in volume_mount, "a subPath mount would never see a rotated certificate"
    # The file's path is an argument, not a config key: one ConfigMap serves every shard.
    assert "web_config_file" not in rendered.config["server"]


def test_paths_given_in_the_web_config_are_kept(chart: Chart) -> None:
    web = {"tls_server_config": {"cert_file": "/certs/a.crt", "key_file": "/certs/a.key"}}
    rendered = chart.render(ci("web-tls"), overrides={"web": {"config": web}})
    tls = web_config(rendered)["tls_server_config"]
    assert tls["cert_file"] == "/certs/a.crt"
    assert tls["key_file"] == "/certs/a.key"


def test_probes_move_to_the_plain_health_port_when_the_web_config_has_tls(chart: Chart) -> None:
    rendered = chart.render(ci("web-tls"))
    ports = {p["name"]: p["containerPort"] for p in rendered.container["ports"]}
    assert ports == {"http": 9469, "health": 9470}
    assert probe_ports(rendered) == {"health"}
    assert rendered.config["server"]["health_listen"] == "0.0.0.0:9470"
    # The Service keeps the main port first; the health port is there for the helm test pod.
    service_ports = main_service(rendered)["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service_ports] == [
        ("http", 9469, "http"),
        ("health", 9470, "health"),
    ]
    (endpoint,) = rendered.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    (test_container,) = rendered.one("Pod")["spec"]["containers"]
    assert test_container["command"][-1] == (
        f"http://{FULLNAME}.{NAMESPACE}.svc:9470/health/live"
    )


@pytest.mark.parametrize(
    ("web", "split"),
    [
        ({"tls_server_config": {"cert_file": "/c/t.crt", "key_file": "/c/t.key"}}, True),
        ({"basic_auth_users": {"prometheus": "$2y$10$x"}}, True),
        ({"http_server_config": {"headers": {"X-Frame-Options": "deny"}}}, False),
    ],
    ids=["tls", "basic-auth", "headers-only"],
)
def test_only_tls_or_basic_auth_split_the_probes_off(
    chart: Chart, web: dict[str, Any], split: bool
) -> None:
    rendered = chart.render(ci("writer"), overrides={"web": {"config": web}})
    assert arg(rendered, "--web.config.file") == WEB_CONFIG
    assert probe_ports(rendered) == ({"health"} if split else {"http"})
    assert ("health_listen" in rendered.config["server"]) is split
    assert [p["name"] for p in main_service(rendered)["spec"]["ports"]] == (
        ["http", "health"] if split else ["http"]
    )


def test_an_existing_web_config_secret_is_mounted_and_always_splits_the_probes(
    chart: Chart,
) -> None:
    rendered = chart.render(ci("web-existing-secret"))
    assert [s["metadata"]["name"] for s in rendered.of_kind("Secret")] == []
    assert rendered.projected()[WEB_CONFIG] == ("secret", "cqrs-exporter-web-config", "web.yml")
    assert arg(rendered, "--web.config.file") == WEB_CONFIG
    assert probe_ports(rendered) == {"health"}
    assert rendered.config["server"]["health_listen"] == "0.0.0.0:9500"
    assert "checksum/web-config" not in annotations(rendered)


def test_without_a_web_config_nothing_changes(chart: Chart) -> None:
    rendered = chart.render(ci("writer"))
    assert "--web.config.file" not in rendered.container["args"]
    assert [p["name"] for p in rendered.container["ports"]] == ["http"]
    assert not [p for p in rendered.projected() if "/web/" in p]


def test_a_changed_web_config_rolls_the_pod(chart: Chart) -> None:
    base = annotations(chart.render(ci("web-tls")))
    users = {"web": {"config": {"basic_auth_users": {"grafana": "$2y$10$y"}}}}
    changed = annotations(chart.render(ci("web-tls"), overrides=users))
    assert changed["checksum/web-config"] != base["checksum/web-config"]
    assert changed["checksum/config"] == base["checksum/config"]


# --- the Cassandra password from a file -----------------------------------------------------


def test_the_password_file_variant_mounts_the_secret_key_and_the_config_reads_the_file(
    chart: Chart, tmp_path: Path, tls_stand_ins: dict[str, bytes]
) -> None:
    rendered = chart.render(ci("web-tls"))
    assert rendered.config["cluster"]["auth"] == {
        "username": "cqrs_exporter",
        "password": {"file": PASSWORD_FILE},
    }
    assert rendered.projected()[PASSWORD_FILE] == (
        "secret",
        "cassandra-exporter-credentials",
        "cassandra-password",
    )
    # The password is in no environment variable.
    assert PASSWORD_ENV not in {e["name"] for e in rendered.container.get("env", [])}
    assert secret_env(rendered) == {}
    # The real check-config reads the mounted file, and names it when it is missing.
    path = mount(rendered, tmp_path / "mounted", tls_stand_ins)
    assert check_config(path, {}).returncode == 0
    password = Path(str(path).replace("config.yaml", "cassandra/password"))
    password.unlink()
    result = check_config(path, {})
    assert result.returncode == 2
    assert "cannot read secret file" in result.stderr
    assert "cassandra/password" in result.stderr


def test_the_password_file_comes_from_the_chart_made_secret_too(chart: Chart) -> None:
    rendered = chart.render(ci("sharded"))
    assert rendered.projected()[PASSWORD_FILE] == ("secret", FULLNAME, "password")
    assert "checksum/secret" in annotations(rendered)


# --- ServiceMonitor TLS and basic auth ------------------------------------------------------


def test_service_monitor_scrapes_over_https_with_a_client_certificate_and_basic_auth(
    chart: Chart,
) -> None:
    rendered = chart.render(ci("web-tls"))
    (endpoint,) = rendered.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    # The Prometheus Operator's Endpoint fields: SecretOrConfigMap for ca and cert, a
    # SecretKeySelector for keySecret and for basicAuth's username and password.
    assert endpoint["tlsConfig"] == {
        "ca": {"secret": {"name": "cqrs-exporter-serving-tls", "key": "ca.crt"}},
        "cert": {"secret": {"name": "prometheus-scrape-tls", "key": "tls.crt"}},
        "keySecret": {"name": "prometheus-scrape-tls", "key": "tls.key"},
        "serverName": f"{FULLNAME}.{NAMESPACE}.svc",
    }
    assert endpoint["basicAuth"] == {
        "username": {"name": "cqrs-exporter-scrape", "key": "username"},
        "password": {"name": "cqrs-exporter-scrape", "key": "password"},
    }
    plain = chart.render(ci("all-enabled")).one("ServiceMonitor")["spec"]["endpoints"][0]
    assert not {"scheme", "tlsConfig", "basicAuth"} & set(plain)


# --- the NetworkPolicy ----------------------------------------------------------------------


def test_no_network_policy_by_default(chart: Chart) -> None:
    assert chart.render(ci("writer")).of_kind("NetworkPolicy") == []
    assert chart.render(ci("all-enabled")).of_kind("NetworkPolicy") == []


def test_the_network_policy_opens_metrics_health_cassandra_and_dns_only(chart: Chart) -> None:
    rendered = chart.render(ci("web-tls"))
    policy = rendered.one("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == rendered.workload["spec"]["selector"][
        "matchLabels"
    ]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    metrics, health, own = policy["ingress"]
    assert metrics["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert metrics["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "prometheus"
    }
    assert health == {"ports": [{"port": "health", "protocol": "TCP"}]}, "the kubelet: any source"
    assert own["from"] == [{"podSelector": policy["podSelector"]}]
    cassandra, dns, to_own = policy["egress"]
    assert cassandra == {
        "ports": [{"port": 9042, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
    }
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    # The helm test pod carries the selector labels: it may call the exporter's ports.
    assert to_own["to"] == [{"podSelector": policy["podSelector"]}]
    assert [p["port"] for p in to_own["ports"]] == [9469, 9470]
    assert set(rendered.one("Pod")["metadata"]["labels"].items()) >= set(
        policy["podSelector"]["matchLabels"].items()
    )


def test_an_open_network_policy_follows_the_cassandra_port_and_has_no_health_rule(
    chart: Chart,
) -> None:
    rendered = chart.render(ci("sharded"), overrides={"cassandra": {"port": 9142}})
    policy = rendered.one("NetworkPolicy")["spec"]
    metrics, _own = policy["ingress"]
    assert "from" not in metrics, "no metricsFrom: any source, on the metrics port only"
    assert policy["egress"][0] == {"ports": [{"port": 9142, "protocol": "TCP"}]}


def test_extra_rules_are_appended_as_given(chart: Chart) -> None:
    extra_egress = {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": [{"port": 443}]}
    extra_ingress = {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    values = {"networkPolicy": {"extraEgress": [extra_egress], "extraIngress": [extra_ingress]}}
    policy = chart.render(ci("web-tls"), overrides=values).one("NetworkPolicy")["spec"]
    assert policy["egress"][-1] == extra_egress
    assert policy["ingress"][-1] == extra_ingress


# --- sharding -------------------------------------------------------------------------------


def test_sharding_runs_a_statefulset_whose_pods_take_their_shard_from_the_ordinal(
    chart: Chart,
) -> None:
    rendered = chart.render(ci("sharded"))
    assert rendered.of_kind("Deployment") == []
    statefulset = rendered.one("StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    args = rendered.container["args"]
    assert args[-2:] == ["--shard", "$(POD_INDEX)/3"]
    (index,) = [e for e in rendered.container["env"] if e["name"] == "POD_INDEX"]
    assert index["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    # Kubernetes expands $(POD_INDEX) in args only for a variable defined in env.
    assert rendered.container["env"].index(index) == 0
    headless = rendered.one("StatefulSet")["spec"]["serviceName"]
    (service,) = [s for s in rendered.of_kind("Service") if s["metadata"]["name"] == headless]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    # One ConfigMap for all the shards: the shard is an argument, not in the config.
    assert "sharding" not in rendered.config


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector with matchLabels and Exists / DoesNotExist expressions."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        if present != {"Exists": True, "DoesNotExist": False}[expression["operator"]]:
            return False
    return True


def test_the_service_monitor_scrapes_each_shard_once(chart: Chart) -> None:
    rendered = chart.render(ci("sharded"))
    selector = rendered.one("ServiceMonitor")["spec"]["selector"]
    services = rendered.of_kind("Service")
    assert len(services) == 2
    chosen = [s["metadata"]["name"] for s in services if selects(selector, s["metadata"]["labels"])]
    assert chosen == [FULLNAME], "the headless Service would list every pod a second time"


def test_sharding_is_refused_before_kubernetes_1_28(chart: Chart) -> None:
    result = chart.template(ci("sharded"), kube_version="1.27.9")
    assert result.returncode != 0
    assert "sharding.enabled needs Kubernetes 1.28 or later" in result.stderr
    assert chart.template(ci("sharded"), kube_version="1.28.0").returncode == 0


def test_the_statefulset_validates_on_the_newest_kubernetes(chart: Chart) -> None:
    rendered = chart.render(ci("sharded"))
    statefulset = yaml.safe_dump(rendered.one("StatefulSet"))
    result = kubeconform(statefulset, "1.37.0")
    assert result.returncode == 0, result.stdout


# --- values the templates refuse ------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "overrides", "message"),
    [
        (
            "web-tls",
            {"web": {"existingSecret": "w"}},
            "set only one of web.config and web.existingSecret",
        ),
        (
            "writer",
            {"web": {"tls": {"existingSecret": "t"}}},
            "web.tls.existingSecret is set but there is no web config",
        ),
        (
            "web-tls",
            {"web": {"tls": {"keyKey": ""}}},
            "web.tls.certKey and web.tls.keyKey are required with web.tls.existingSecret",
        ),
        ("web-tls", {"web": {"healthPort": 9469}}, "web.healthPort must differ from"),
        (
            "writer",
            {"web": {"config": {"tls_server_config": {"cert_file": "/c/t.crt"}}}},
            "web.config.tls_server_config needs cert_file and key_file, or web.tls.existingSecret",
        ),
        (
            "regional",
            {"cassandra": {"auth": {"passwordFrom": "file"}}},
            "cassandra.auth.passwordFrom is file but cassandra.auth.enabled is false",
        ),
        (
            "writer",
            {"config": {"sharding": {"index": 0, "count": 2}}},
            "config.sharding: set sharding.enabled and sharding.shards instead",
        ),
        (
            "writer",
            {"config": {"server": {"health_listen": "0.0.0.0:1"}}},
            "config.server.health_listen: set web.healthPort instead",
        ),
        (
            "writer",
            {"config": {"server": {"web_config_file": "/w.yml"}}},
            "config.server.web_config_file: set web.config or web.existingSecret instead",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and " " not in value else None,
)
def test_templates_refuse_conflicting_new_values(
    chart: Chart, base: str, overrides: dict[str, Any], message: str
) -> None:
    assert message in chart.error(ci(base), overrides=overrides)


# --- what the chart asks of the exporter ----------------------------------------------------


def serve_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_exporter_takes_every_key_and_argument_the_chart_gives() -> None:
    """`--web.config.file` with `server.health_listen`, and `--shard`: the exporter's side of
    the web config and of sharding."""
    assert "--web.config.file" in serve_help()
    assert "--shard" in serve_help()
    assert {"web_config_file", "health_listen"} <= set(ServerConfig.model_fields)
    assert "sharding" in Config.model_fields


def test_notes_say_how_to_reach_a_protected_or_sharded_exporter(
    chart: Chart, tmp_path: Path
) -> None:
    protected = render_notes(chart, tmp_path / "web", ci("web-tls"))
    assert "curl -s https://127.0.0.1:9469/health/ready" in protected
    assert "answer in plain HTTP on port 9470" in protected
    assert f"logs deploy/{FULLNAME}" in protected
    sharded = render_notes(chart, tmp_path / "sharded", ci("sharded"))
    assert "shards:      3 (StatefulSet" in sharded
    assert f"logs statefulset/{FULLNAME}" in sharded
    assert "curl -s http://127.0.0.1:9469/health/ready" in sharded
