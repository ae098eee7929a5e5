"""Where bucket mounts and volumes may go, and how a create's ``mounts``/``volumes`` parse."""

from __future__ import annotations

import pytest

from shells.control.requests import CreateShellRequest
from shells.domain.errors import InvalidRequest
from shells.domain.mounts import check_mount_paths

CREDS = {"access_key_id": "AK", "secret_access_key": "SK"}


def bucket(path: str, **extra: object) -> dict[str, object]:
    return {
        "bucket": "my-bucket",
        "endpoint": "https://s3.example.org",
        "path": path,
        "credentials": CREDS,
    } | extra


@pytest.mark.parametrize(
    "paths",
    [["/"], ["/proc"], ["/proc/x"], ["/dev/shm/x"], ["/sys"], ["/.shells"], ["/.shells/x"],
     ["/etc/resolv.conf"], ["/workspace"], ["/tmp"], ["/etc"], ["/data", "/data/x"], ["/a/b", "/a"],
     ["/data", "/data/"], ["relative"], ["/a/../proc"]],
)  # fmt: skip
def test_a_path_that_shadows_the_system_or_another_mount_is_refused(paths: list[str]) -> None:
    with pytest.raises(InvalidRequest):
        check_mount_paths([(f"mounts[{i}].path", p) for i, p in enumerate(paths)])


def test_paths_below_system_directories_and_side_by_side_are_fine() -> None:
    paths = ["/workspace/in", "/data", "/database", "/etc/x"]
    assert check_mount_paths([(str(i), p) for i, p in enumerate(paths)]) == paths


def test_a_create_parses_buckets_and_volumes_together() -> None:
    req = CreateShellRequest.parse(
        {"language": "bash", "mounts": [bucket("/b", prefix="/runs/1/", read_only=True)],
         "volumes": [{"name": "vol_1", "path": "/v"}]}
    )  # fmt: skip
    (b,) = req.buckets
    assert (b.bucket, b.endpoint, b.prefix, b.path, b.read_only) == (
        "my-bucket", "https://s3.example.org", "runs/1", "/b", True
    )  # fmt: skip
    assert "SK" not in repr(b)
    assert [(v.name, v.path, v.read_only) for v in req.volumes] == [("vol_1", "/v", False)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mounts": [bucket("/b", bucket="Bad_Name")]}, "mounts[0].bucket"),
        ({"mounts": [bucket("/b", endpoint="ftp://x")]}, "mounts[0].endpoint"),
        ({"mounts": [bucket("/b", endpoint="https://k:s@x")]}, "mounts[0].endpoint"),
        ({"mounts": [bucket("/b", endpoint="https://x/bucket")]}, "mounts[0].endpoint"),
        ({"mounts": [bucket("/b", prefix="a/../b")]}, "mounts[0].prefix"),
        (
            {"mounts": [bucket("/b", credentials={"access_key_id": "AK"})]},
            "mounts[0].credentials.secret_access_key",
        ),
        ({"mounts": [bucket("/b")], "volumes": [{"name": "v", "path": "/b/x"}]}, "volumes[0].path"),
        ({"volumes": [{"name": "Bad Name", "path": "/v"}]}, "volumes[0].name"),
        ({"volumes": [{"name": "v", "path": "/v", "read_only": "yes"}]}, "volumes[0].read_only"),
    ],
)
def test_bad_mounts_name_the_field_to_fix(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        CreateShellRequest.parse({"language": "bash", **body})
    assert err.value.details.get("field") == field, err.value.details


def test_a_volume_attached_twice_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        CreateShellRequest.parse(
            {"language": "bash", "volumes": [{"name": "v", "path": "/a"}, {"name": "v", "path": "/b"}]}
        )
