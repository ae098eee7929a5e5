"""The E2B door's file transfer extras, driven by E2B's own Python SDK from PyPI: signed URLs
(``download_url`` / ``upload_url`` fetched with plain httpx and no key, and every way of forging or
stretching one refused as envd refuses it) and gzip both ways, with a gzip bomb stopped at the cap."""

from __future__ import annotations

import pytest

from .test_e2b_door import FLAVOURS, Door, door  # noqa: F401  (door: the module's own server)

SIGNED_URLS = """
import asyncio, json, urllib.parse
import httpx
from e2b import AsyncSandbox

def with_query(url, **changes):
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

def refusal(response):
    return [response.status_code, response.json().get("code")]

async def main():
    out = {}
    sbx = await AsyncSandbox.create(secure=True)
    other = await AsyncSandbox.create(secure=True)
    try:
        await sbx.files.write("docs/a.txt", "signed hello")
        url = sbx.download_url("docs/a.txt")
        plain = httpx.Client(timeout=60)  # no key, no sandbox header, no access token
        r = plain.get(url)
        out["get"] = [r.status_code, r.text]
        r = plain.get(sbx.download_url("docs/a.txt", use_signature_expiration=120))
        out["get_until"] = [r.status_code, r.text]
        out["expired"] = refusal(plain.get(sbx.download_url("docs/a.txt", use_signature_expiration=-5)))
        out["no_signature"] = refusal(plain.get(with_query(url, signature="")))
        out["bad_signature"] = refusal(plain.get(with_query(url, signature="v1_" + "A" * 43)))
        out["other_path"] = refusal(plain.get(with_query(url, path="docs/../../../etc/shadow")))
        out["as_root"] = refusal(plain.get(with_query(url, username="root")))
        stretched = sbx.download_url("docs/a.txt", use_signature_expiration=60)
        out["stretched"] = refusal(plain.get(with_query(stretched, signature_expiration="99999999999")))
        out["write_url_read"] = refusal(plain.get(sbx.upload_url("docs/a.txt")))
        foreign = other.download_url("docs/a.txt")  # another sandbox's signature, aimed at this one
        out["foreign"] = refusal(plain.get(foreign, headers={"E2b-Sandbox-Id": sbx.sandbox_id}))

        up = sbx.upload_url("up/b.txt")
        r = plain.post(up, files={"file": ("b.txt", b"uploaded")})
        out["post"] = [r.status_code, r.json()]
        out["read_b"] = await sbx.files.read("up/b.txt")
        as_root = {"Authorization": "Basic cm9vdDo="}  # root: — a header the signature does not cover
        r = plain.post(sbx.upload_url("/tmp/c.txt"), files={"file": ("c", b"c")}, headers=as_root)
        out["post_basic_root"] = r.status_code
        out["read_url_write"] = refusal(plain.post(url, files={"file": ("x", b"x")}))
        owners = await sbx.commands.run("stat -c %U /home/user/up/b.txt /tmp/c.txt")
        out["owners"] = owners.stdout.split()
        octet = {"Content-Type": "application/octet-stream"}
        r = plain.post(sbx.upload_url("/etc/e2b-root", user="root"), content=b"root", headers=octet)
        owner = (await sbx.commands.run("stat -c %U /etc/e2b-root")).stdout.strip()
        out["root_upload"] = [r.status_code, owner]
    finally:
        await sbx.kill()
        await other.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_signed_urls_work_with_plain_http_and_refuse_every_forgery(door: Door, flavour: str) -> None:  # noqa: F811
    out = door.run(SIGNED_URLS, flavour, door.key())
    assert out["get"] == [200, "signed hello"]
    assert out["get_until"] == [200, "signed hello"]
    for case in (
        "expired",
        "no_signature",
        "bad_signature",
        "other_path",
        "as_root",
        "stretched",
        "write_url_read",
        "foreign",
        "read_url_write",
    ):
        assert out[case] == [401, 401], (case, out[case])
    assert out["post"][0] == 200 and out["post"][1][0]["path"] == "/home/user/up/b.txt"
    assert out["read_b"] == "uploaded"
    assert out["post_basic_root"] == 200
    assert out["owners"] == ["user", "user"]  # the signed user, never the Authorization header's root
    assert out["root_upload"] == [200, "root"]


GZIP = """
import asyncio, gzip, json, zlib
import httpx
from e2b import AsyncSandbox

async def main():
    out = {}
    sbx = await AsyncSandbox.create()
    try:
        text = "compressible line\\n" * 5000
        await sbx.files.write("z/one.txt", text, gzip=True)
        out["written"] = (await sbx.commands.run("wc -c < /home/user/z/one.txt")).stdout.strip()
        out["read"] = await sbx.files.read("z/one.txt", gzip=True) == text
        raw = await sbx.files.read("z/one.txt", format="bytes", gzip=True)
        out["read_bytes"] = bytes(raw) == text.encode()

        door = httpx.Client(base_url=URL, timeout=120, headers={
            "E2b-Sandbox-Id": sbx.sandbox_id, "X-Access-Token": sbx._envd_access_token})
        r = door.get("/files", params={"path": "z/one.txt"}, headers={"Accept-Encoding": "gzip"})
        out["wire"] = [r.status_code, r.headers.get("content-encoding"), r.headers.get("vary"),
                       r.headers.get("content-type"), r.text == text]
        refuse_identity = {"Accept-Encoding": "br;q=1, identity;q=0"}
        r = door.get("/files", params={"path": "z/one.txt"}, headers=refuse_identity)
        out["unacceptable"] = [r.status_code, r.json()["code"]]
        r = door.post("/files", params={"path": "z/br.txt"}, content=b"x",
                      headers={"Content-Type": "application/octet-stream", "Content-Encoding": "br"})
        out["unknown_coding"] = r.status_code
        r = door.post("/files", params={"path": "z/bad.txt"}, content=b"not gzip at all",
                      headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
        out["corrupt"] = r.status_code
        two = gzip.compress(b"first ") + gzip.compress(b"second")
        r = door.post("/files", params={"path": "z/two.txt"}, content=two,
                      headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
        out["members"] = [r.status_code, await sbx.files.read("z/two.txt")]

        def bomb():  # CAP + 1 MiB of zeros as one gzip stream, ~0.5 MiB on the wire
            deflater = zlib.compressobj(wbits=31)
            zeros = bytes(1 << 20)
            for _ in range(int(CAP) // (1 << 20) + 1):
                yield deflater.compress(zeros)
            yield deflater.flush()
        r = door.post("/files", params={"path": "z/bomb.bin"}, content=bomb(),
                      headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
        out["bomb"] = [r.status_code, r.json()["message"]]
        out["bomb_left"] = (await sbx.commands.run("ls -A /home/user/z")).stdout.split()
        out["disk"] = (await sbx.commands.run("du -sm /home/user /tmp | cut -f1")).stdout.split()
    finally:
        await sbx.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_gzip_both_ways_and_a_gzip_bomb_is_refused(door: Door, flavour: str) -> None:  # noqa: F811
    from shells.domain.limits import E2B_MAX_INFLATED_BYTES

    out = door.run(GZIP, flavour, door.key(), URL=door.url, CAP=str(E2B_MAX_INFLATED_BYTES))
    assert out["written"] == str(len("compressible line\n") * 5000)
    assert out["read"] and out["read_bytes"]
    assert out["wire"] == [200, "gzip", "Accept-Encoding", "text/plain; charset=utf-8", True]
    assert out["unacceptable"] == [400, 400]
    assert out["unknown_coding"] == 400
    assert out["corrupt"] == 400
    assert out["members"] == [200, "first second"]
    assert out["bomb"][0] == 413 and "inflates past" in out["bomb"][1]
    assert out["bomb_left"] == ["one.txt", "two.txt"]  # nothing of the bomb, not even a partial file
    assert all(int(mb) < 64 for mb in out["disk"])
