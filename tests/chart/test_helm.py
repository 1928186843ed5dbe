"""The Helm chart: lint, render every CI values file, validate the objects offline with
kubeconform, run the real `check-config` on the rendered config, and compare the packaged
rules and dashboards with the generated ones.

helm and kubeconform come from `scripts/setup.sh --for test` (in `.tools/`); without them
these tests fail and say how to install them.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from tests.chart.test_helm_image import FINAL, only
from tests.support import free_port, serve_command

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "cqrs-exporter"
TOOLS = Path(os.environ.get("CQRS_TOOLS_DIR", ROOT / ".tools"))
SCHEMAS = TOOLS / "kubernetes-json-schema"
CI_VALUES = {
    path.name.removesuffix("-values.yaml"): path for path in (CHART / "ci").glob("*-values.yaml")
}
RELEASE, NAMESPACE = "cqrs", "monitoring"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest with schemas.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
PASSWORD_ENV = "CQRS_CASSANDRA_PASSWORD"
CI_PASSWORD = "not-a-real-password"
CONFIG_MAP_LIMIT = 1024 * 1024
# The first Kubernetes whose StatefulSet pods carry the label apps.kubernetes.io/pod-index.
SHARDING_KUBE_VERSION = "1.28.0"


def tool(name: str) -> Path:
    """A chart tool from .tools/bin; a clear failure, not a skip, when it is missing."""
    path = TOOLS / "bin" / name
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} not found at {path}: run `scripts/setup.sh --for test` (or `make test`) "
            "to install the chart's test tools (helm, kubeconform and the Kubernetes JSON "
            "schemas)",
            pytrace=False,
        )
    return path


class Chart:
    """Runs helm on the chart with its caches in a private home; renders are cached per
    values, because the same few permutations are inspected by many tests."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._rendered: dict[tuple[Any, ...], Rendered] = {}

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tool("helm")), *args],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "HELM_CACHE_HOME": str(self.home / "cache"),
                "HELM_CONFIG_HOME": str(self.home / "config"),
                "HELM_DATA_HOME": str(self.home / "data"),
            },
            timeout=120,
            check=False,
        )

    def template(
        self,
        *values: Path,
        overrides: dict[str, Any] | None = None,
        kube_version: str = KUBE_VERSIONS[-1],
    ) -> subprocess.CompletedProcess[str]:
        args = [
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
        ]
        for path in values:
            args += ["--values", str(path)]
        if overrides is not None:
            text = yaml.safe_dump(overrides)
            extra = self.home / f"overrides-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
            extra.write_text(text, encoding="utf-8")
            args += ["--values", str(extra)]
        return self.helm(*args)

    def render(
        self,
        *values: Path,
        overrides: dict[str, Any] | None = None,
        kube_version: str = KUBE_VERSIONS[-1],
    ) -> Rendered:
        key = (values, json.dumps(overrides, sort_keys=True), kube_version)
        if key not in self._rendered:
            result = self.template(*values, overrides=overrides, kube_version=kube_version)
            assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
            objects = [o for o in yaml.safe_load_all(result.stdout) if o]
            self._rendered[key] = Rendered(result.stdout, objects)
        # A copy: tests may change what they get.
        return copy.deepcopy(self._rendered[key])

    def error(self, *values: Path, overrides: dict[str, Any]) -> str:
        """What helm says when it refuses the values."""
        result = self.template(*values, overrides=overrides)
        assert result.returncode != 0, f"helm template accepted {overrides}"
        return result.stderr


@dataclass
class Rendered:
    """The objects `helm template` printed."""

    text: str
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def workload(self) -> dict[str, Any]:
        """The Deployment, or the StatefulSet of a sharded release."""
        (found,) = self.of_kind("Deployment") + self.of_kind("StatefulSet")
        return found

    @property
    def pod(self) -> dict[str, Any]:
        return self.workload["spec"]["template"]  # type: ignore[no-any-return]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["spec"]["containers"]
        return container  # type: ignore[no-any-return]

    def projected(self) -> dict[str, tuple[str, str, str]]:
        """Each file of the pod's config volume, by its path in the container: where it comes
        from, as (configMap or secret, the object's name, its key)."""
        (mount,) = [m for m in self.container["volumeMounts"] if m["name"] == "config"]
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        return {
            f"{mount['mountPath']}/{item['path']}": (kind, source["name"], item["key"])
            for entry in volumes["config"]["projected"]["sources"]
            for kind, source in entry.items()
            for item in source["items"]
        }

    @property
    def config_map(self) -> dict[str, Any]:
        (config_map,) = [c for c in self.of_kind("ConfigMap") if "config.yaml" in c["data"]]
        return config_map

    @property
    def config_text(self) -> str:
        return str(self.config_map["data"]["config.yaml"])

    @property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_text)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Chart:
    return Chart(tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(params=sorted(CI_VALUES), ids=str)
def ci_values(request: pytest.FixtureRequest) -> Path:
    return CI_VALUES[request.param]


@pytest.fixture
def rendered(chart: Chart, ci_values: Path) -> Rendered:
    return chart.render(ci_values)


def ci(name: str) -> Path:
    return CI_VALUES[name]


def test_a_missing_tool_fails_rather_than_skips_and_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "TOOLS", tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"helm not found at .*scripts/setup\.sh"):
        tool("helm")


# --- lint and render ------------------------------------------------------------------------


def test_ci_values_cover_writer_regional_existing_secret_and_everything_enabled() -> None:
    assert set(CI_VALUES) == {
        "writer",
        "regional",
        "existing-secret",
        "all-enabled",
        "web-tls",
        "web-existing-secret",
        "sharded",
    }


def test_helm_lint_passes_strictly_for_each_ci_values_file(chart: Chart, ci_values: Path) -> None:
    result = chart.helm("lint", "--strict", str(CHART), "--values", str(ci_values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_each_ci_values_file_renders_the_core_objects(rendered: Rendered) -> None:
    kinds = {o["kind"] for o in rendered.objects}
    assert {"Service", "ConfigMap", "ServiceAccount", "Pod"} <= kinds
    assert len(kinds & {"Deployment", "StatefulSet"}) == 1
    for obj in rendered.objects:
        assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["cqrs-exporter/role"] in {"writer", "regional"}


def test_one_exporter_per_release_never_two_at_once(rendered: Rendered) -> None:
    """One Deployment pod, replaced by Recreate; or, sharded, one StatefulSet pod per shard,
    each ordinal (so shard 0, the only writer) at most once at any time."""
    spec = rendered.workload["spec"]
    if rendered.workload["kind"] == "StatefulSet":
        args = rendered.container["args"]
        shards = int(args[args.index("--shard") + 1].rpartition("/")[2])
        assert spec["replicas"] == shards >= 2
        assert spec["updateStrategy"] == {"type": "RollingUpdate"}
        assert rendered.of_kind("Deployment") == []
    else:
        assert spec["replicas"] == 1
        assert spec["strategy"] == {"type": "Recreate"}


# --- kubeconform, offline -------------------------------------------------------------------


def kubeconform(manifests: str, kube_version: str) -> subprocess.CompletedProcess[str]:
    if not (SCHEMAS / f"v{kube_version}-local-strict").is_dir():
        pytest.fail(
            f"no Kubernetes {kube_version} JSON schemas in {SCHEMAS}: run "
            "`scripts/setup.sh --for test`",
            pytrace=False,
        )
    location = (
        f"{SCHEMAS}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/"
        "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )
    # No -ignore-missing-schemas: a core object without a schema is an error, and the
    # schema location is a local directory, so nothing is fetched.
    return subprocess.run(
        [
            str(tool("kubeconform")),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            kube_version,
            "-schema-location",
            location,
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def core_manifests(rendered: Rendered) -> str:
    return yaml.safe_dump_all(
        [o for o in rendered.objects if o["kind"] not in CRD_KINDS], sort_keys=False
    )


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_kubeconform_strict_accepts_every_core_object(
    chart: Chart, ci_values: Path, kube_version: str
) -> None:
    if ci_values == ci("sharded") and Version(kube_version) < Version(SHARDING_KUBE_VERSION):
        # The pod-index label the shards read their index from is not there: refused.
        result = chart.template(ci_values, kube_version=kube_version)
        assert result.returncode != 0
        assert "sharding.enabled needs Kubernetes 1.28 or later" in result.stderr
        return
    rendered = chart.render(ci_values, kube_version=kube_version)
    core = [o for o in rendered.objects if o["kind"] not in CRD_KINDS]
    result = kubeconform(core_manifests(rendered), kube_version)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary == {"valid": len(core), "invalid": 0, "errors": 0, "skipped": 0}


def test_kubeconform_offline_rejects_an_unknown_field_and_an_unknown_kind(chart: Chart) -> None:
    """The check above can fail: the local schemas are strict and complete."""
    rendered = chart.render(ci("writer"))
    deployment = rendered.deployment
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    result = kubeconform(yaml.safe_dump(deployment), KUBE_VERSIONS[-1])
    assert result.returncode != 0
    assert "livenessProbes" in result.stdout

    unknown = {"apiVersion": "v1", "kind": "NoSuchKind", "metadata": {"name": "x"}}
    result = kubeconform(yaml.safe_dump(unknown), KUBE_VERSIONS[-1])
    assert result.returncode != 0
    assert "could not find schema for NoSuchKind" in result.stdout


# --- the rendered config is one the exporter accepts ----------------------------------------


def secret_env(rendered: Rendered) -> dict[str, str]:
    """The environment the Deployment gives the exporter from Secrets, with stand-in values."""
    return {
        entry["name"]: f"secret-from-{entry['valueFrom']['secretKeyRef']['name']}"
        for entry in rendered.container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }


def check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real `cqrs-exporter check-config --resolve-secrets` (as `serve` reads the config),
    with only the given secret variables set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", "--resolve-secrets", str(path)],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=60,
        check=False,
    )


def mount(rendered: Rendered, root: Path, tls: dict[str, bytes]) -> Path:
    """The pod's config volume laid out under `root` as the kubelet would mount it: config.yaml
    with its paths moved under `root`, a stand-in value for every Secret key, and a real CA,
    certificate and key where the config names TLS files. Returns config.yaml's path."""
    config_dir = "/etc/cqrs-exporter"
    moved = f"{root}{config_dir}"
    for path, (kind, name, _key) in rendered.projected().items():
        target = Path(f"{root}{path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"secret-from-{name}" if kind == "secret" else "", encoding="utf-8")
    for field, data in tls.items():
        if field in rendered.config["cluster"].get("tls", {}):
            Path(f"{root}{rendered.config['cluster']['tls'][field]}").write_bytes(data)
    text = yaml.safe_dump(rendered.config).replace(config_dir, moved)
    path = Path(moved) / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_rendered_config_passes_the_real_check_config(
    rendered: Rendered, tmp_path: Path, tls_stand_ins: dict[str, bytes]
) -> None:
    """As the pod has it: the Secrets' environment variables set, their files mounted."""
    path = mount(rendered, tmp_path, tls_stand_ins)
    result = check_config(path, secret_env(rendered))
    assert result.returncode == 0, result.stderr
    assert f"{path}: OK" in result.stdout


def test_password_comes_from_the_secret_through_the_environment(
    chart: Chart, tmp_path: Path
) -> None:
    rendered = chart.render(ci("writer"))
    assert rendered.config["cluster"]["auth"] == {
        "username": "cqrs_exporter",
        "password": {"env": PASSWORD_ENV},
    }
    (env,) = rendered.container["env"]
    assert env == {
        "name": PASSWORD_ENV,
        "valueFrom": {"secretKeyRef": {"name": RELEASE + "-cqrs-exporter", "key": "password"}},
    }
    secret = rendered.one("Secret")
    assert secret["metadata"]["name"] == RELEASE + "-cqrs-exporter"
    assert base64.b64decode(secret["data"]["password"]).decode() == CI_PASSWORD

    # Without the variable the exporter refuses the config and names it.
    path = tmp_path / "config.yaml"
    path.write_text(rendered.config_text, encoding="utf-8")
    result = check_config(path, {})
    assert result.returncode == 2
    assert f"environment variable {PASSWORD_ENV} is not set" in result.stderr


def test_password_never_appears_outside_the_secret(rendered: Rendered) -> None:
    for obj in rendered.objects:
        if obj["kind"] != "Secret":
            assert CI_PASSWORD not in yaml.safe_dump(obj), f"{obj['kind']} holds the password"


def test_existing_secret_is_used_and_no_secret_is_made(chart: Chart) -> None:
    rendered = chart.render(ci("existing-secret"))
    assert rendered.of_kind("Secret") == []
    (env,) = rendered.container["env"]
    assert env["valueFrom"]["secretKeyRef"] == {
        "name": "cassandra-exporter-credentials",
        "key": "cassandra-password",
    }
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" not in annotations


def test_roles_set_replication_mode_and_local_datacenter(chart: Chart) -> None:
    writer = chart.render(ci("writer")).config
    assert writer["probes"]["replication"]["mode"] == "writer"
    assert writer["datacenters"] == {"write": "us-east", "read": ["ca-central", "eu-west"]}
    regional = chart.render(ci("regional"))
    assert regional.config["probes"]["replication"]["mode"] == "regional"
    assert regional.config["datacenters"]["local"] == "ca-central"
    labels = regional.deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["cqrs-exporter/region"] == "ca-central"
    assert labels["cqrs-exporter/role"] == "regional"
    assert labels["app.kubernetes.io/component"] == "regional"


def test_config_passthrough_is_merged_with_the_keys_the_chart_writes(chart: Chart) -> None:
    config = chart.render(ci("all-enabled")).config
    assert config["cluster"]["connect_timeout"] == "15s"
    assert config["cluster"]["port"] == 9142
    assert config["server"] == {
        "listen": "0.0.0.0:9469",
        "log_level": "DEBUG",
        "log_format": "text",
        "shutdown_timeout": "8s",
    }
    assert config["probes"]["replication"] == {
        "interval": "1s",
        "poll_interval": "50ms",
        "mode": "writer",
    }
    assert config["read_models"][0]["name"] == "orders_by_customer"


def test_tls_files_named_in_the_config_are_mounted(chart: Chart) -> None:
    rendered = chart.render(ci("all-enabled"))
    tls = rendered.config["cluster"]["tls"]
    (mount,) = [m for m in rendered.container["volumeMounts"] if m["name"] == "config"]
    assert mount["readOnly"] is True
    projected = rendered.projected()
    assert projected[tls["ca_file"]] == ("secret", "cassandra-exporter-tls", "ca.crt")
    assert projected[tls["cert_file"]] == ("secret", "cassandra-exporter-tls", "tls.crt")
    assert projected[tls["key_file"]] == ("secret", "cassandra-exporter-tls", "tls.key")
    # The file the exporter is told to read is the ConfigMap's config.yaml.
    args = rendered.container["args"]
    config_path = args[args.index("--config") + 1]
    assert projected[config_path] == ("configMap", RELEASE + "-cqrs-exporter", "config.yaml")


def deploy_doc_values(tmp_path: Path) -> dict[str, Path]:
    """The values files docs/deploy.md shows, by the name it gives each, written out."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    files: dict[str, Path] = {}
    for block in re.finditer(r"```yaml\n(.*?)```", text, re.S):
        before = text[: block.start()].rstrip().splitlines()[-1]
        name = re.search(r"`([\w-]+\.yaml)`", before)
        if name:
            files[name.group(1)] = tmp_path / name.group(1)
            files[name.group(1)].write_text(block.group(1), encoding="utf-8")
    # The page shows ca-central.yaml and says eu-west.yaml is the same with eu-west in it.
    eu_west = files["ca-central.yaml"].read_text(encoding="utf-8").replace("ca-central", "eu-west")
    files["eu-west.yaml"] = tmp_path / "eu-west.yaml"
    files["eu-west.yaml"].write_text(eu_west, encoding="utf-8")
    return files


@pytest.mark.parametrize(
    ("region", "role"), [("us-east", "writer"), ("ca-central", "regional"), ("eu-west", "regional")]
)
def test_the_deploy_guide_values_render_configs_the_exporter_accepts(
    chart: Chart, tmp_path: Path, region: str, role: str
) -> None:
    files = deploy_doc_values(tmp_path)
    rendered = chart.render(files["common.yaml"], files[f"{region}.yaml"])
    config = rendered.config
    assert config["probes"]["replication"]["mode"] == role
    assert config["datacenters"].get("local", config["datacenters"]["write"]) == region
    assert config["monitoring"]["writer_id"] == "primary"
    path = tmp_path / "config.yaml"
    path.write_text(rendered.config_text, encoding="utf-8")
    result = check_config(path, secret_env(rendered))
    assert result.returncode == 0, result.stderr
    assert bool(rendered.of_kind("PrometheusRule")) == (role == "writer")


# --- hardening, probes, rollout -------------------------------------------------------------


def test_pod_and_container_are_hardened(rendered: Rendered) -> None:
    pod = rendered.pod["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = rendered.container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] > 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    test_pod = rendered.one("Pod")
    assert test_pod["spec"]["containers"][0]["securityContext"] == context


def test_resources_default_to_the_measured_footprint_with_no_cpu_limit(chart: Chart) -> None:
    """About 69 MB RSS and 8 % of a core measured at defaults: requested with a margin, a
    memory limit with headroom, and no CPU limit, whose throttling would skew the timings."""
    assert chart.render(ci("writer")).container["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    values = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert "about 69 MB RSS and 8 % of one core" in values
    limited = chart.render(ci("all-enabled")).container["resources"]
    assert limited["requests"] == {"cpu": "100m", "memory": "128Mi"}


def test_liveness_and_readiness_probe_the_health_endpoints(rendered: Rendered) -> None:
    """On the main port; on the plain health port when the web config needs TLS or auth."""
    container = rendered.container
    port, *health = container["ports"]
    assert port == {"name": "http", "containerPort": 9469, "protocol": "TCP"}
    probed = "health" if health else "http"
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": probed}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": probed}
    assert rendered.config["server"]["listen"] == "0.0.0.0:9469"
    if health:
        (health_port,) = health
        assert health_port["name"] == "health"
        listen = rendered.config["server"]["health_listen"]
        assert listen == f"0.0.0.0:{health_port['containerPort']}"
    else:
        assert "health_listen" not in rendered.config["server"]
    (service,) = [s for s in rendered.of_kind("Service") if s["spec"].get("clusterIP") != "None"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == rendered.workload["spec"]["selector"]["matchLabels"]


def test_the_deployment_runs_the_image_command_on_its_exposed_port(rendered: Rendered) -> None:
    command = json.loads(only(FINAL, "CMD"))
    args = rendered.container["args"]
    assert args[: len(command)] == command
    # Then only the web config and the shard, each as an option and its value.
    extra = dict(zip(args[len(command) :: 2], args[len(command) + 1 :: 2], strict=True))
    assert set(extra) <= {"--web.config.file", "--shard"}
    assert "command" not in rendered.container, "the image's ENTRYPOINT is kept"
    assert rendered.container["ports"][0]["containerPort"] == int(only(FINAL, "EXPOSE"))


def checksum(rendered: Rendered) -> str:
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    return str(annotations["checksum/config"])


def test_checksum_config_rolls_the_pod_when_the_config_changes(chart: Chart) -> None:
    base = chart.render(ci("writer"))
    assert re.fullmatch(r"[0-9a-f]{64}", checksum(base))
    again = chart.render(ci("writer"))
    assert checksum(again) == checksum(base)
    threshold = {"config": {"thresholds": {"replication_lag": "2s"}}}
    changed = chart.render(ci("writer"), overrides=threshold)
    assert checksum(changed) != checksum(base)
    unrelated = chart.render(ci("writer"), overrides={"podAnnotations": {"a": "b"}})
    assert checksum(unrelated) == checksum(base)
    annotations = base.deployment["spec"]["template"]["metadata"]["annotations"]
    new_password = chart.render(
        ci("writer"), overrides={"cassandra": {"auth": {"password": "other"}}}
    )
    new_annotations = new_password.deployment["spec"]["template"]["metadata"]["annotations"]
    assert new_annotations["checksum/secret"] != annotations["checksum/secret"]


# --- helm test ------------------------------------------------------------------------------



@pytest.fixture
def exporter_without_cassandra(tmp_path: Path) -> Iterator[str]:
    """A real `cqrs-exporter serve` whose Cassandra is absent: /health/live still answers."""
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cluster": {
                    "contact_points": ["127.0.0.1"],
                    "port": free_port(),
                    "connect_timeout": "1s",
                },
                "datacenters": {"write": "us-east", "read": ["ca-central"]},
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    process = subprocess.Popen(
        serve_command(config, f"127.0.0.1:{port}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health/live", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the exporter never answered /health/live"
                time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_helm_test_pod_calls_health_live_and_fails_on_an_error(
    chart: Chart, exporter_without_cassandra: str
) -> None:
    rendered = chart.render(ci("writer"))
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    *command, url = container["command"]
    assert url == f"http://{RELEASE}-cqrs-exporter.{NAMESPACE}.svc:9469/health/live"
    assert command[0] == "python"
    # Run the pod's own command against a real exporter, as the pod would.
    local = [sys.executable, *command[1:]]
    ok = subprocess.run(
        [*local, f"{exporter_without_cassandra}/health/live"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert '/health/live: 200 {"status":"UP"' in ok.stdout
    # /health/ready is 503 without Cassandra: the same command must fail on it.
    failing = subprocess.run(
        [*local, f"{exporter_without_cassandra}/health/ready"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert failing.returncode == 1
    assert "/health/ready: 503" in failing.stdout


# --- NOTES.txt -------------------------------------------------------------------------------


def render_notes(chart: Chart, tmp_path: Path, values: Path) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` skips NOTES.txt and `helm lint`
    only logs its failures, so a copy of the chart renders it into a ConfigMap through `tpl`."""
    copied = tmp_path / "chart"
    shutil.copytree(CHART, copied)
    notes = (CHART / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    (copied / "files" / "notes-under-test.txt").write_text(notes, encoding="utf-8")
    (copied / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ tpl (.Files.Get "files/notes-under-test.txt") . | toJson }}\n',
        encoding="utf-8",
    )
    result = chart.helm(
        "template",
        RELEASE,
        str(copied),
        "--namespace",
        NAMESPACE,
        "--values",
        str(values),
        "--show-only",
        "templates/notes-under-test.yaml",
    )
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_notes_tell_the_role_and_how_to_check_the_exporter(chart: Chart, tmp_path: Path) -> None:
    writer = render_notes(chart, tmp_path / "writer", ci("writer"))
    assert (
        "role:        writer (writes sentinels in us-east, looks for them in ca-central, "
        "eu-west)" in writer
    )
    assert f"port-forward svc/{RELEASE}-cqrs-exporter 9469:9469" in writer
    assert f"helm test {RELEASE} -n {NAMESPACE}" in writer
    assert "serviceMonitor.enabled is false" in writer
    assert "keep them disabled in the other releases" not in writer

    regional = render_notes(chart, tmp_path / "regional", ci("regional"))
    assert "role:        regional (reads the writer's heartbeat in ca-central)" in regional
    assert "Cassandra authentication is off" in regional

    everything = render_notes(chart, tmp_path / "all", ci("all-enabled"))
    assert (
        "installs the alert rules and the dashboards: keep them disabled in the other "
        "releases" in everything
    )
    assert "serviceMonitor.enabled is false" not in everything


# --- ServiceMonitor, PrometheusRule, dashboards ---------------------------------------------


def test_optional_objects_are_off_by_default(chart: Chart) -> None:
    rendered = chart.render(ci("writer"))
    assert rendered.of_kind("ServiceMonitor") == []
    assert rendered.of_kind("PrometheusRule") == []
    labels = [c["metadata"]["labels"] for c in rendered.of_kind("ConfigMap")]
    assert [label for label in labels if "grafana_dashboard" in label] == []


def test_service_monitor_scrapes_the_service(chart: Chart) -> None:
    rendered = chart.render(ci("all-enabled"))
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    for label in monitor["spec"]["targetLabels"]:
        assert label in service["metadata"]["labels"]


def rule_files() -> list[Path]:
    return sorted((CHART / "files" / "rules").glob("*.yaml"))


def dashboard_files() -> list[Path]:
    return sorted((CHART / "files" / "dashboards").glob("*.json"))


def test_prometheus_rules_are_the_generated_rule_groups(chart: Chart) -> None:
    rendered = chart.render(ci("all-enabled"))
    rules = {
        r["metadata"]["annotations"]["cqrs-exporter/source"]: r
        for r in rendered.of_kind("PrometheusRule")
    }
    assert sorted(rules) == [path.name for path in rule_files()] != []
    for path in rule_files():
        generated = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert rules[path.name]["spec"]["groups"] == generated["groups"]
        assert rules[path.name]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_bodies_pass_promtool(chart: Chart, tmp_path: Path) -> None:
    promtool = Path("/usr/bin/promtool")
    assert promtool.exists(), "promtool (Debian package prometheus) is needed for this test"
    rendered = chart.render(ci("all-enabled"))
    for rule in rendered.of_kind("PrometheusRule"):
        path = tmp_path / f"{rule['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
        result = subprocess.run(
            [str(promtool), "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_configmaps_for_the_grafana_sidecar_verbatim(chart: Chart) -> None:
    rendered = chart.render(ci("all-enabled"))
    dashboards = {
        name: cm
        for cm in rendered.of_kind("ConfigMap")
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1"
        for name in cm["data"]
    }
    assert sorted(dashboards) == [path.name for path in dashboard_files()] != []
    for path in dashboard_files():
        config_map = dashboards[path.name]
        text = path.read_text(encoding="utf-8")
        assert config_map["data"][path.name] == text
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "CQRS"}
        assert len(text.encode()) < CONFIG_MAP_LIMIT
        assert json.loads(text)["uid"]


def test_chart_rules_and_dashboards_are_identical_to_the_generated_ones() -> None:
    """files/ is what `cqrs-exporter generate` wrote beside dashboards/ and alerts/."""
    pairs = {
        CHART / "files" / "dashboards": (ROOT / "dashboards", "*.json"),
        CHART / "files" / "rules": (ROOT / "alerts", "*.yaml"),
    }
    for packaged_dir, (generated_dir, pattern) in pairs.items():
        packaged = {p.name: p for p in packaged_dir.glob(pattern)}
        generated = {p.name: p for p in generated_dir.glob(pattern)}
        assert packaged, f"{packaged_dir} is empty: run `cqrs-exporter generate`"
        assert sorted(packaged) == sorted(generated), (packaged_dir, generated_dir)
        for name, path in packaged.items():
            assert (
                hashlib.sha256(path.read_bytes()).hexdigest()
                == hashlib.sha256(generated[name].read_bytes()).hexdigest()
            ), f"{path} differs from {generated[name]}: run `cqrs-exporter generate`"


# --- values the templates refuse ------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "overrides", "message"),
    [
        ("writer", {"region": ""}, "region is required"),
        ("writer", {"cassandra": {"contactPoints": []}}, "cassandra.contactPoints is required"),
        ("writer", {"datacenters": {"write": ""}}, "datacenters.write is required"),
        (
            "regional",
            {"datacenters": {"local": ""}},
            "datacenters.local is required when role is regional",
        ),
        (
            "regional",
            {"datacenters": {"local": "us-east"}},
            "datacenters.local (us-east) must be one of datacenters.read (ca-central, eu-west)",
        ),
        (
            "writer",
            {"datacenters": {"local": "eu-west"}},
            "datacenters.local (eu-west) must be empty or the write datacenter (us-east)",
        ),
        (
            "writer",
            {"cassandra": {"auth": {"password": ""}}},
            "set cassandra.auth.existingSecret (preferred) or cassandra.auth.password",
        ),
        (
            "writer",
            {"cassandra": {"auth": {"existingSecret": "s"}}},
            "set only one of cassandra.auth.existingSecret and cassandra.auth.password",
        ),
        (
            "regional",
            {"cassandra": {"auth": {"password": "p"}}},
            "cassandra.auth.password or existingSecret is set but cassandra.auth.enabled is false",
        ),
        (
            "regional",
            {"cassandra": {"tls": {"existingSecret": "t"}}},
            "cassandra.tls.existingSecret is set but cassandra.tls.enabled is false",
        ),
        (
            "writer",
            {"cassandra": {"tls": {"enabled": True, "certKey": "tls.crt", "keyKey": "tls.key"}}},
            "cassandra.tls.certKey needs cassandra.tls.existingSecret",
        ),
        (
            "writer",
            {"cassandra": {"auth": {"username": ""}}},
            "cassandra.auth.username is required when cassandra.auth.enabled is true",
        ),
        (
            "writer",
            {"cassandra": {"tls": {"enabled": True, "existingSecret": "t", "certKey": "tls.crt"}}},
            "cassandra.tls.certKey and cassandra.tls.keyKey go together",
        ),
        (
            "writer",
            {"config": {"datacenters": {"write": "x"}}},
            "config.datacenters: set datacenters.write, datacenters.read and datacenters.local",
        ),
        (
            "writer",
            {"config": {"cluster": {"auth": {"username": "u"}}}},
            "config.cluster.auth: set cassandra.auth instead",
        ),
        (
            "writer",
            {"config": {"cluster": {"contact_points": ["x"]}}},
            "config.cluster.contact_points: set cassandra.contactPoints instead",
        ),
        (
            "writer",
            {"config": {"server": {"listen": "0.0.0.0:1"}}},
            "config.server.listen: the chart sets it",
        ),
        (
            "writer",
            {"config": {"server": {"log_level": "DEBUG"}}},
            "config.server.log_level: set logLevel instead",
        ),
        (
            "writer",
            {"config": {"probes": {"replication": {"mode": "regional"}}}},
            "config.probes.replication.mode: set role instead",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and " " not in value else None,
)
def test_templates_refuse_incomplete_or_conflicting_values(
    chart: Chart, base: str, overrides: dict[str, Any], message: str
) -> None:
    error = chart.error(ci(base), overrides=overrides)
    assert message in error


def test_default_values_alone_ask_for_the_region(chart: Chart) -> None:
    result = chart.helm("template", RELEASE, str(CHART))
    assert result.returncode != 0
    assert "region is required" in result.stderr
