"""Workspace sync of a microvm shell (docs/storage.md), into a user's bucket on a real SeaweedFS with
authentication enforced: the host reads the VM's /workspace through its agent under host-side caps,
so files written inside land in the bucket with no copy step; what was written just before a pause
is in the bucket when the pause answers (the last pass runs before the VM is saved); a delete sends
the rest; a link the guest made is skipped, never followed; the key is nowhere inside.

One server and one VM for the module: microvms boot under TCG here, and each boot counts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from tests.support import s3

from .harness import ServerProcess, keep_log, running_server
from .rest import exec_wait, rest_client
from .test_bucket_mounts import BUCKET, assert_no_credentials, get, until, weed  # noqa: F401  (weed: the module's S3)

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm shells on this host: {MISSING}")
PREFIX = "vmrun"


@pytest.fixture(scope="module")
def server(data_root: Path, weed: s3.S3Server) -> Iterator[ServerProcess]:  # noqa: F811
    private = weed.endpoint.split("://")[1]  # the operator's own S3 server, on this host
    env = {"SHELLS_SYNC_PRIVATE_ENDPOINTS": private}
    with running_server(data_root / "vmsync", warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(server) as client:
        yield client


def synced(weed: s3.S3Server, path: str) -> bytes | None:  # noqa: F811
    return get(weed, f"{PREFIX}/{path}")


def act(api: httpx.Client, shell_id: str, capability: str) -> None:
    r = api.post(f"/v1/shells/{shell_id}/actions", json={"capability": capability}, timeout=300)
    assert r.status_code == 200, r.text


def test_a_microvm_workspace_lands_in_the_users_bucket(
    api: httpx.Client,
    server: ServerProcess,
    weed: s3.S3Server,  # noqa: F811
) -> None:
    sync: dict[str, Any] = {
        "bucket": BUCKET,
        "endpoint": weed.endpoint,
        "prefix": PREFIX,
        "credentials": {"access_key_id": s3.USER[0], "secret_access_key": s3.USER[1]},
    }
    r = api.post("/v1/shells", json={"language": "python", "runtime": "microvm", "sync": sync}, timeout=300)
    assert r.status_code == 201, r.text
    shell_id = str(r.json()["id"])
    deleted = False
    try:
        # Continuously, with no copy step; the guest's links are skipped, not followed.
        w = exec_wait(
            api,
            shell_id,
            "mkdir -p /workspace/out && echo result > /workspace/out/r.txt"
            " && head -c 300000 /dev/urandom > /workspace/out/blob && sha256sum /workspace/out/blob"
            " && ln -s /etc/shadow /workspace/shadow && ln -s /etc /workspace/etc-dir && sync",
        )
        assert w["exit_code"] == 0, w
        assert until("the VM's file in the bucket", lambda: synced(weed, "out/r.txt")) == b"result\n"
        blob = until("the VM's larger file in the bucket", lambda: synced(weed, "out/blob"))
        assert hashlib.sha256(blob).hexdigest() == w["stdout"].split()[0]
        status = api.get(f"/v1/shells/{shell_id}/sync").json()
        assert status["enabled"] and status["bucket"] == BUCKET and status["access_key_id"] == s3.USER[0]
        assert s3.USER[1] not in str(status)
        assert status["skipped_files"] >= 2, status  # the two links: listed, never followed or read
        assert synced(weed, "shadow") is None and synced(weed, "etc-dir/passwd") is None
        assert_no_credentials(api, shell_id, "cat /proc/cmdline", "/etc /root /tmp /workspace")

        # Complete at pause: files written just before it are in the bucket when it answers.
        many = " ".join(f"/workspace/late/{i}.txt" for i in range(20))
        w = exec_wait(
            api,
            shell_id,
            f"mkdir /workspace/late && for f in {many}; do echo $f > $f; done; rm /workspace/out/r.txt",
        )
        assert w["exit_code"] == 0, w
        act(api, shell_id, "pause")
        for i in range(20):
            assert synced(weed, f"late/{i}.txt") == f"/workspace/late/{i}.txt\n".encode(), i
        assert synced(weed, "out/r.txt") is None  # removed inside, so removed from the bucket
        status = api.get(f"/v1/shells/{shell_id}/sync").json()
        assert status["state"] == "synced" and status["last_error"] is None, status

        # Complete at delete: the request resumes it, the delete sends the rest.
        assert exec_wait(api, shell_id, "echo final > /workspace/final.txt")["exit_code"] == 0
        assert api.delete(f"/v1/shells/{shell_id}", timeout=300).status_code == 204
        deleted = True
        assert synced(weed, "final.txt") == b"final\n"
        assert synced(weed, "late/0.txt") is not None  # deleting a shell keeps the bucket's data
    except BaseException:
        print(f"server log kept: {keep_log(server, 'vmsync')}")
        raise
    finally:
        if not deleted:
            api.delete(f"/v1/shells/{shell_id}", timeout=300)
