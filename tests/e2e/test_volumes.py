"""Volumes (docs/storage.md): a tenant's named filesystem that outlives every shell, attached at
create to container shells, any number read-only, one read-write, its size enforced on the host,
and a delete refused while a shell holds it."""

from __future__ import annotations

import httpx

from .rest import error_of, exec_wait


def create(api: httpx.Client, **body: object) -> str:
    r = api.post("/v1/shells", json={"language": "python", **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_volume_outlives_its_writer_and_is_shared_read_only(api: httpx.Client) -> None:
    r = api.post("/v1/volumes", json={"name": "results", "size_gib": 1})
    assert r.status_code == 201, r.text
    assert r.json()["size_gib"] == 1 and r.json()["attached"] == []
    error_of(api.post("/v1/volumes", json={"name": "results", "size_gib": 1}), 409, "volume_exists")
    made: list[str] = []
    try:
        writer = create(api, volumes=[{"name": "results", "path": "/data"}])
        made.append(writer)
        out = exec_wait(api, writer, "echo first > /data/a.txt && ls -ln /data/a.txt")
        assert out["exit_code"] == 0 and " 0 0 " in out["stdout"], out  # owned by the shell's root

        reader = create(api, volumes=[{"name": "results", "path": "/workspace/in", "read_only": True}])
        made.append(reader)
        seen = exec_wait(api, reader, "cat /workspace/in/a.txt; echo x > /workspace/in/b.txt")
        assert seen["stdout"] == "first\n" and "Read-only" in seen["stderr"], seen
        root = exec_wait(api, reader, "mount -o remount,rw /workspace/in")  # root inside cannot undo it
        assert root["exit_code"] != 0
        second_writer = {"language": "python", "volumes": [{"name": "results", "path": "/d"}]}
        error_of(api.post("/v1/shells", json=second_writer), 409, "volume_in_use")
        held = api.get("/v1/volumes/results").json()["attached"]
        assert sorted(h["shell_id"] for h in held) == sorted(made)
        error_of(api.delete("/v1/volumes/results"), 409, "volume_in_use")
        error_of(
            api.post("/v1/shells", json={"language": "python", "volumes": [{"name": "nope", "path": "/d"}]}),
            404,
            "volume_not_found",
        )

        # Its size is enforced on the host: 1 GiB and not a byte more.
        full = exec_wait(
            api, writer, "dd if=/dev/zero of=/data/big bs=1M count=1100 2>&1; rm -f /data/big", timeout_s=300
        )
        assert "Disk quota exceeded" in full["stdout"], full

        for sid in made:
            assert api.delete(f"/v1/shells/{sid}").status_code == 204
        made.clear()
        nxt = create(api, volumes=[{"name": "results", "path": "/data"}])
        made.append(nxt)
        assert exec_wait(api, nxt, "cat /data/a.txt")["stdout"] == "first\n"
    finally:
        for sid in made:
            api.delete(f"/v1/shells/{sid}")
    assert api.delete("/v1/volumes/results").status_code == 204
    assert all(v["name"] != "results" for v in api.get("/v1/volumes").json()["volumes"])
    error_of(api.get("/v1/volumes/results"), 404, "volume_not_found")
