"""The kustomize manifests of deploy/: they build with kubectl's built-in kustomize, every object is
valid against the current Kubernetes schemas (``kubernetes-validate``), and the real API server the
tests start accepts them all in a server-side dry run (so nothing is created).

The test API server is kube-apiserver 1.20. Every group the manifests use (core v1, apps/v1,
rbac.authorization.k8s.io/v1, coordination.k8s.io/v1) is served there and by every current release,
so the dry run checks the same objects a current cluster gets; what 1.20 lacks (policy/v1 for a
PodDisruptionBudget, from 1.21) is not used."""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from shells.control.secret_box import load_or_create_key
from shells.node.wire import load_secret
from tests.support.kube import KubeAPI

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "overlays" / "example"
BASE = REPO / "deploy" / "base"


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (Debian package kubernetes-client)")
    return path


def build(kubectl: str, where: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(where)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    return doc


def test_the_manifests_build_and_are_valid_against_current_schemas(kubectl: str) -> None:
    version = kubernetes_validate.latest_version()
    for where in (BASE, OVERLAY):
        docs = build(kubectl, where)
        assert {d["kind"] for d in docs} >= {
            "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
            "ConfigMap", "Deployment", "Service", "DaemonSet",
        }  # fmt: skip
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
    docs = build(kubectl, OVERLAY)
    control = by_kind(docs, "Deployment", "shells-control")["spec"]
    assert control["replicas"] == 3
    pod = control["template"]["spec"]
    assert pod["serviceAccountName"] == "shells-control"
    assert pod["containers"][0]["image"] == "registry.example.com/shells:0.1.0"
    assert pod["containers"][0]["args"] == ["serve", "--role", "control"]
    node = by_kind(docs, "DaemonSet", "shells-node")["spec"]["template"]["spec"]
    assert node["containers"][0]["securityContext"]["privileged"] is True and node["hostNetwork"] is True
    assert {v["hostPath"]["path"] for v in node["volumes"] if "hostPath" in v} >= {
        "/var/lib/shells",
        "/run/shells",
        "/dev",
    }
    leases = by_kind(docs, "Role", "shells-leases")["rules"][0]
    assert leases["apiGroups"] == ["coordination.k8s.io"] and leases["resources"] == ["leases"]
    assert {"get", "list", "create", "update", "delete"} <= set(leases["verbs"])  # what cluster.kube calls
    assert by_kind(docs, "ClusterRole", "shells-node-topology")["rules"][0]["verbs"] == ["get"]
    settings = by_kind(docs, "ConfigMap", "shells-settings")["data"]
    assert settings["SHELLS_REGION"] == "eu"  # the overlay's merge over the base
    assert settings["SHELLS_KUBE_URL"] == "https://kubernetes.default.svc"  # the Leases turned on


def test_a_broken_manifest_is_refused_by_the_schema(kubectl: str) -> None:
    """The validation above can fail: a replica count written as text is refused."""
    deployment = copy.deepcopy(by_kind(build(kubectl, OVERLAY), "Deployment", "shells-control"))
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_every_replica_shares_both_keys_and_a_node_gets_only_the_cluster_secret(
    kubectl: str, tmp_path: Path
) -> None:
    """Replicas that made keys of their own could not open each other's sealed secrets nor the
    record's egress CA; the keys come from one Secret, as files the settings name, and the example's
    placeholders have the sizes the server requires."""
    docs = build(kubectl, OVERLAY)
    keys = by_kind(docs, "Secret", "shells-keys")
    files = {name: base64.b64decode(value) for name, value in keys["data"].items()}
    assert set(files) == {"cluster-secret", "secrets-key"}
    for name, value in files.items():
        (tmp_path / name).write_bytes(value)
    load_secret(tmp_path / "cluster-secret")  # raises when too short
    assert len(load_or_create_key(tmp_path / "secrets-key")) == 32

    def mounted(kind: str, name: str) -> tuple[dict[str, str], dict[str, Any]]:
        pod = by_kind(docs, kind, name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/shells/keys"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == keys["metadata"]["name"] and mount["readOnly"] is True
        env = {e["name"]: e.get("value", "") for e in container["env"]}
        refs = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
        return env, {"secret": volume["secret"], "secret_refs": refs}

    env, control = mounted("Deployment", "shells-control")
    assert env["SHELLS_CLUSTER_SECRET_FILE"] == "/etc/shells/keys/cluster-secret"
    assert env["SHELLS_SECRETS_KEY_FILE"] == "/etc/shells/keys/secrets-key"
    assert "items" not in control["secret"] and control["secret_refs"]  # both keys, and the database
    env, node = mounted("DaemonSet", "shells-node")
    assert env["SHELLS_CLUSTER_SECRET_FILE"] == "/etc/shells/keys/cluster-secret"
    assert "SHELLS_SECRETS_KEY_FILE" not in env
    assert node["secret"]["items"] == [{"key": "cluster-secret", "path": "cluster-secret"}]
    assert not node["secret_refs"]  # no database URL on a node


def test_the_api_server_accepts_every_object_in_a_server_side_dry_run(
    kubectl: str, kube_api: KubeAPI, tmp_path: Path
) -> None:
    config = kube_api.kubeconfig(tmp_path / "kubeconfig")
    built = tmp_path / "shells.yaml"
    built.write_text(yaml.safe_dump_all(build(kubectl, OVERLAY)), encoding="utf-8")
    run = [kubectl, f"--kubeconfig={config}"]
    subprocess.run([*run, "create", "namespace", "shells"], capture_output=True, text=True, check=False)
    applied = subprocess.run(
        [*run, "apply", "--server-side", "--dry-run=server", "-f", str(built)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    for kind in ("deployment.apps/shells-control", "daemonset.apps/shells-node", "role.rbac.authorization"):
        assert kind in applied.stdout, applied.stdout
    listed = subprocess.run([*run, "-n", "shells", "get", "deployments,daemonsets", "-o", "name"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert listed.stdout.strip() == "", "a dry run created objects"
