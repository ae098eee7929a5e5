"""Templates from OCI images, imported from a real registry (Debian's docker-registry with TLS from a
test CA and basic auth) through the real server: layers applied with whiteouts and opaque
directories, owners, modes, links and xattrs kept; credentials required; malicious layers refused
naming the layer, with nothing registered and nothing written outside the template."""

from __future__ import annotations

import secrets
import tarfile
from pathlib import Path

import anyio
import httpx
import pytest

from shells.runtime.oci.push import PackedLayer, config_document, push_image
from tests.support.oci_registry import Entry, Registry, dir_entry, gzip_layer

from .harness import ServerProcess
from .oci import CREDS, api, import_image, make, oci_server, pool_templates, registry, run
from .rest import ShellMaker, error_of, exec_wait, ndjson

__all__ = ["api", "make", "oci_server", "registry"]  # fixtures


def test_a_multi_layer_image_applies_whiteouts_opaque_dirs_links_owners_and_xattrs(
    api: httpx.Client, registry: Registry, make: ShellMaker
) -> None:
    events = ndjson(
        api,
        "/v1/templates/import",
        {"image": registry.ref("debian:1"), "name": "deb:1", "credentials": CREDS},
    )
    steps = [e["name"] for e in events if e["type"] == "step"]
    assert steps[0].startswith(f"resolve {registry.ref('debian:1')}") and "download 3 layers" in steps[1]
    assert any("layer 3/3" in e["data"] for e in events if e["type"] == "output")
    done = events[-1]
    assert done["type"] == "done", events[-3:]
    template = done["template"]
    assert template["kind"] == "image" and template["image"]["digest"].startswith("sha256:")
    assert template["image"]["source"] == registry.ref("debian:1") and template["image"]["cmd"] == ["bash"]

    shell = make(language="bash", template="deb:1")
    data = "/opt/data"
    assert run(api, shell["id"], f"cat {data}/keep.txt") == "kept\n"
    gone = exec_wait(api, shell["id"], f"test -e {data}/gone.txt")
    assert gone["exit_code"] == 1, "the whiteout in layer 3 must hide layer 2's file"
    assert run(api, shell["id"], "ls /opt/opaque") == "new.txt\n"  # the opaque dir dropped old.txt
    facts = run(
        api,
        shell["id"],
        f"stat -c '%h %u:%g %a' {data}/keep.txt {data}/owned.txt {data}/setuid; readlink {data}/link; "
        f'python3 -c \'import os; print(os.getxattr("{data}/xattr.txt", "user.shells").decode())\'',
    )
    assert facts.split("\n") == ["2 0:0 644", "1 1000:1000 640", "1 0:0 4755", "keep.txt", "yes", ""]


def test_a_private_image_needs_the_right_credentials(api: httpx.Client, registry: Registry) -> None:
    ref = registry.ref("busybox:1")
    r = api.post("/v1/templates/import", json={"image": ref, "name": "nocreds:1"})
    assert "refused no credentials" in error_of(r, 403, "registry_denied")["message"]
    wrong = {**CREDS, "password": "not-the-password"}
    r = api.post("/v1/templates/import", json={"image": ref, "name": "nocreds:1", "credentials": wrong})
    assert "refused the credentials given" in error_of(r, 403, "registry_denied")["message"]
    r = api.post("/v1/templates/import", json={"image": "Not A Ref", "name": "x:1"})
    assert error_of(r, 400, "invalid_image_reference")["details"] == {"field": "image"}
    r = import_image(api, registry, "nothing-here:1", "missing:1")
    error_of(r, 404, "image_not_found")
    assert api.get("/v1/templates/nocreds:1").status_code == 404


def test_the_same_image_twice_is_stored_once(
    api: httpx.Client, registry: Registry, oci_server: ServerProcess
) -> None:
    first = import_image(api, registry, "busybox:1", "bb-a:1")
    assert first.status_code == 200, first.text
    events = ndjson(
        api,
        "/v1/templates/import",
        {"image": registry.ref("busybox:1"), "name": "bb-b:1", "credentials": CREDS},
    )
    assert any("already here" in e.get("data", "") for e in events), events
    assert any(e["type"] == "step" and "reuse the layers of bb-a:1" in e["name"] for e in events), events
    assert events[-1]["template"]["content_hash"] == first.json()["content_hash"]
    again = import_image(api, registry, "busybox:1", "bb-b:1")  # the same name and content: cached
    assert again.status_code == 200 and again.json()["created_at"] == events[-1]["template"]["created_at"]
    for name in ("bb-a:1", "bb-b:1"):
        assert api.delete(f"/v1/templates/{name}").status_code == 204


# malicious layers ---------------------------------------------------------------------------------
def push_layers(registry: Registry, repo: str, layers: list[list[Entry]], tmp: Path) -> None:
    packed = [gzip_layer(tmp, entries) for entries in layers]
    config = config_document({"Env": []}, [d for _, d in packed], "amd64", "malicious")

    async def go() -> None:
        async with registry.client(repo, push=True) as client:
            await push_image(client, "1", [p for p, _ in packed], config)

    anyio.run(go)


ESCAPE = f"shells-escape-{secrets.token_hex(4)}"


@pytest.mark.parametrize(
    ("layers", "bad_layer", "why"),
    [
        ([[Entry(f"../../../../../../../../tmp/{ESCAPE}", b"x")]], 1, "climbs out"),
        ([[Entry(f"/tmp/{ESCAPE}", b"x")]], 1, "absolute path"),
        ([[dir_entry("dev"), Entry("dev/sda", kind=tarfile.BLKTYPE)]], 1, "device node"),
        ([[Entry("ok", b"x")], [Entry("null", kind=tarfile.CHRTYPE)]], 2, "device node"),
        (
            [[Entry("etc", kind=tarfile.SYMTYPE, link="/no/such/dir")], [Entry("etc/passwd", b"x")]],
            2,
            "dangling",
        ),
        ([[Entry("a", b"x")], [Entry("b", kind=tarfile.LNKTYPE, link="../../etc/shadow")]], 2, "climbs out"),
        ([[Entry("big", b"x", uid=70000)]], 1, "outside 0..65535"),
    ],
    ids=[
        "dotdot",
        "absolute",
        "block-device",
        "char-device-in-layer-2",
        "dangling-link",
        "hardlink-out",
        "uid",
    ],
)
def test_a_malicious_layer_is_refused_naming_it_and_nothing_is_left(
    api: httpx.Client,
    registry: Registry,
    oci_server: ServerProcess,
    tmp_path: Path,
    layers: list[list[Entry]],
    bad_layer: int,
    why: str,
) -> None:
    repo = f"evil-{secrets.token_hex(3)}"
    push_layers(registry, repo, layers, tmp_path)
    before = pool_templates(oci_server)
    r = import_image(api, registry, f"{repo}:1", "evil:1")
    err = error_of(r, 422, "image_rejected")
    assert err["details"]["layer"].startswith(f"layer {bad_layer}/{len(layers)}") and why in err["message"], (
        err
    )
    assert api.get("/v1/templates/evil:1").status_code == 404
    assert pool_templates(oci_server) == before  # no staging directory, no template
    assert not Path(f"/tmp/{ESCAPE}").exists()


def test_a_symlink_to_the_host_root_keeps_every_write_inside_the_template(
    api: httpx.Client, registry: Registry, oci_server: ServerProcess, tmp_path: Path, make: ShellMaker
) -> None:
    """A layer's link to ``/tmp`` (or ``../..``) is resolved inside the tree, never on the host."""
    name = f"shells-inside-{secrets.token_hex(4)}"
    layers = [
        [*debian_free_busybox(), Entry("escape", kind=tarfile.SYMTYPE, link="../../../../tmp")],
        [Entry(f"escape/{name}", b"inside\n")],
    ]
    repo = f"linky-{secrets.token_hex(3)}"
    push_layers(registry, repo, layers, tmp_path)
    r = import_image(api, registry, f"{repo}:1", "linky:1")
    assert r.status_code == 200, r.text
    assert not Path(f"/tmp/{name}").exists()
    rootfs = oci_server.data_dir / "storage" / "pool" / "templates" / "linky:1" / "rootfs"
    assert (rootfs / "tmp" / name).read_text() == "inside\n"
    assert api.delete("/v1/templates/linky:1").status_code == 204


def debian_free_busybox() -> list[Entry]:
    """The smallest tree a layer can sit on: a directory."""
    return [dir_entry("tmp", 0o1777)]


def test_a_layer_whose_bytes_do_not_match_its_manifest_is_refused(
    api: httpx.Client, registry: Registry, tmp_path: Path
) -> None:
    packed, diff = gzip_layer(tmp_path, [Entry("file", b"some bytes\n")])
    short = PackedLayer(packed.path, packed.digest, packed.size - 5, packed.media_type)  # the manifest lies
    config = config_document({"Env": []}, [diff], "amd64", "short")
    repo = f"short-{secrets.token_hex(3)}"

    async def go() -> None:
        async with registry.client(repo, push=True) as client:
            await client.push_blob(packed.digest, packed.path)
            await push_image(client, "1", [short], config)

    anyio.run(go)
    r = import_image(api, registry, f"{repo}:1", "short:1")
    err = error_of(r, 422, "image_rejected")
    assert "does not match its digest" in err["message"] and err["details"]["layer"].startswith("layer 1/1")
    assert api.get("/v1/templates/short:1").status_code == 404


def test_the_sdk_imports_and_exports_in_both_forms(oci_server: ServerProcess, registry: Registry) -> None:
    from shells import AsyncShells
    from shells.sdk import BuildOutput, RegistryDenied

    creds = (CREDS["username"], CREDS["password"])
    with oci_server.client() as client:
        seen: list[object] = []
        t = client.templates.import_image(
            registry.ref("busybox:1"), "sdk-sync:1", credentials=creds, on_event=seen.append
        )
        assert t.kind == "image" and t.image is not None and t.image["user"] == "app"
        assert any(isinstance(e, BuildOutput) and "layer 1/1" in e.data for e in seen)
        with pytest.raises(RegistryDenied):
            client.templates.import_image(registry.ref("busybox:1"), "sdk-none:1")
        client.templates.export("sdk-sync:1", registry.ref("exported/sdk:1"), credentials=creds)

    async def async_form() -> None:
        async with AsyncShells(oci_server.url, oci_server.token) as client:
            t = await client.templates.import_image(registry.ref("musl:1"), "sdk-async:1", credentials=creds)
            assert t.image is not None and t.image["source"] == registry.ref("musl:1")
            await client.templates.delete("sdk-async:1")

    anyio.run(async_form)
    with oci_server.client() as client:
        client.templates.delete("sdk-sync:1")
