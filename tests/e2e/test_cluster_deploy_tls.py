"""The node-tls overlay of deploy/ (TLS on the node RPC, docs/cluster.md): it builds, every object is
valid against current Kubernetes schemas, and each node agent and control replica names the
certificate files it mounts read-only from its own Secret."""

from __future__ import annotations

import kubernetes_validate  # type: ignore[import-untyped]

from .test_cluster_deploy import REPO, build, by_kind, kubectl  # noqa: F401 - kubectl is a fixture

TLS_OVERLAY = REPO / "deploy" / "overlays" / "node-tls"


def test_the_tls_overlay_mounts_each_roles_certificates_and_names_them(kubectl: str) -> None:  # noqa: F811
    docs = build(kubectl, TLS_OVERLAY)
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    for kind, name, secret in (("DaemonSet", "shells-node", "shells-node-tls"),
                               ("Deployment", "shells-control", "shells-control-tls")):  # fmt: skip
        pod = by_kind(docs, kind, name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "node-tls"]
        assert mount["readOnly"] is True
        assert {env[f"SHELLS_NODE_TLS_{part}_FILE"] for part in ("CERT", "KEY", "CA")} == {
            f"{mount['mountPath']}/{file}" for file in ("tls.crt", "tls.key", "ca.crt")
        }
        (volume,) = [v for v in pod["volumes"] if v["name"] == "node-tls"]
        assert volume["secret"]["secretName"] == secret
