"""Placement: a node in the asked region that offers the class and has room, spreading creates;
typed errors naming the region and the shape otherwise."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shells.cluster.membership import offer_annotations, parse_offer
from shells.control.placement import SnapshotSource, place, place_from_snapshot, regions
from shells.domain.errors import NoCapacity, SnapshotNotPlaceable, SnapshotUnreachable, UnknownRegion
from shells.domain.isolation import Runtime
from shells.domain.nodes import NodeOffer
from shells.domain.shapes import SHAPES, get_shape

SMALL = get_shape("s-1vcpu-512mb")
BIG = get_shape("s-8vcpu-16gb")
ALL = frozenset(Runtime)


def node(
    name: str, region: str, memory: int = 8192, cpus: float = 4, classes: frozenset[Runtime] = ALL
) -> NodeOffer:
    return NodeOffer(name, f"{name}:7070", region, f"{region}-a", classes, "tcg", cpus, cpus, memory, 100_000)


def test_a_shell_lands_in_its_region_on_the_node_with_most_room() -> None:
    offers = [node("eu-1", "eu", 4096), node("eu-2", "eu", 8192), node("us-1", "us", 65536)]
    assert place(offers, "eu", Runtime.CONTAINER, SMALL).name == "eu-2"
    assert place(offers, "us", Runtime.CONTAINER, SMALL).name == "us-1"
    assert regions(offers) == ["eu", "us"]


def test_creates_spread_over_the_region_when_each_placement_is_counted() -> None:
    offers = {o.name: o for o in (node("a", "eu"), node("b", "eu"), node("c", "eu"))}
    placed: dict[str, int] = {}
    for _ in range(30):
        chosen = place(list(offers.values()), "eu", Runtime.CONTAINER, SMALL)
        offers[chosen.name] = chosen.taking(SMALL)
        placed[chosen.name] = placed.get(chosen.name, 0) + 1
    assert placed == {"a": 10, "b": 10, "c": 10}


def test_an_unknown_region_is_a_400_naming_the_known_ones() -> None:
    with pytest.raises(UnknownRegion) as caught:
        place([node("a", "eu"), node("b", "us")], "mars", Runtime.CONTAINER, SMALL)
    assert caught.value.code == "unknown_region"
    assert "mars" in caught.value.message and "eu, us" in caught.value.message
    assert caught.value.details["field"] == "region"


def test_a_class_no_node_in_the_region_offers_is_no_capacity() -> None:
    offers = [node("a", "eu", classes=frozenset({Runtime.CONTAINER})), node("b", "us")]
    with pytest.raises(NoCapacity) as caught:
        place(offers, "eu", Runtime.MICROVM, SMALL)
    assert caught.value.code == "no_capacity"
    assert caught.value.details == {"region": "eu", "runtime": "microvm", "shape": SMALL.name}
    assert "eu" in caught.value.message and "microvm" in caught.value.message


@pytest.mark.parametrize(
    "offer",
    [node("a", "eu", memory=1024), node("a", "eu", cpus=2), replace(node("a", "eu"), disk_free_mib=1024)],
    ids=["memory", "cpus", "disk"],
)
def test_a_shape_larger_than_any_node_is_no_capacity_with_region_and_shape(offer: NodeOffer) -> None:
    with pytest.raises(NoCapacity) as caught:
        place([offer], "eu", Runtime.CONTAINER, BIG)
    assert BIG.name in caught.value.message and "'eu'" in caught.value.message
    assert caught.value.details["shape"] == BIG.name


def test_a_full_region_does_not_spill_into_another() -> None:
    offers = [node("eu-1", "eu", memory=256), node("us-1", "us")]
    with pytest.raises(NoCapacity):
        place(offers, "eu", Runtime.CONTAINER, SMALL)


def test_an_offer_round_trips_through_lease_annotations() -> None:
    offer = NodeOffer("n1", "10.0.0.1:7070", "eu", "eu-b", frozenset({Runtime.WASM, Runtime.MICROVM}),
                      "kvm", 16, 3.5, 12345, 67890)  # fmt: skip
    lease = {"metadata": {"name": "shells-node-n1", "annotations": offer_annotations(offer)},
             "spec": {"holderIdentity": "n1"}}  # fmt: skip
    assert parse_offer(lease) == offer


def test_a_lease_without_a_holder_or_a_complete_offer_is_no_node() -> None:
    def lease(notes: dict[str, str], holder: str | None = "n1") -> dict[str, object]:
        return {"metadata": {"name": "x", "annotations": notes}, "spec": {"holderIdentity": holder}}

    notes = offer_annotations(node("n1", "eu"))
    assert parse_offer(lease(notes, holder=None)) is None
    assert parse_offer(lease({k: v for k, v in notes.items() if not k.endswith("memory-free-mib")})) is None
    parsed = parse_offer(lease(notes | {"shells.dev/classes": "container,quantum"}))
    assert parsed is not None and parsed.classes == {Runtime.CONTAINER}


def test_every_shape_fits_some_realistic_node() -> None:
    offers = [node("big", "eu", memory=32768, cpus=8)]
    for shape in SHAPES.values():
        assert place(offers, "eu", Runtime.CONTAINER, shape).name == "big"


def test_a_cordoned_node_gets_no_new_shell_and_a_region_of_cordoned_nodes_is_no_capacity() -> None:
    offers = [node("eu-1", "eu", 4096), node("eu-2", "eu", 8192)]
    assert place(offers, "eu", Runtime.CONTAINER, SMALL, {"eu-2"}).name == "eu-1"  # though it has less room
    with pytest.raises(NoCapacity, match="cordoned") as err:
        place(offers, "eu", Runtime.CONTAINER, SMALL, {"eu-1", "eu-2"})
    assert err.value.details["region"] == "eu"


def test_a_shell_from_a_snapshot_goes_to_a_holder_with_room_then_to_nodes_that_fetch_it() -> None:
    offers = [
        node("eu-1", "eu", 4096),
        node("eu-2", "eu", 8192),
        node("eu-3", "eu", 2048),
        node("us-1", "us"),
    ]

    def ranked(held: set[str], durable: bool, cordoned: frozenset[str] = frozenset()) -> list[str]:
        source = SnapshotSource("snap_1", frozenset(held), durable)
        return [o.name for o in place_from_snapshot(offers, "eu", Runtime.CONTAINER, SMALL, cordoned, source)]

    assert ranked({"eu-1"}, durable=False) == ["eu-1"]  # the holder, though eu-2 has more room
    assert ranked({"eu-1", "eu-3"}, durable=False) == ["eu-1", "eu-3"]
    assert ranked({"eu-3"}, durable=True) == ["eu-3", "eu-2", "eu-1"]  # holder, then by room
    assert ranked({"eu-3"}, durable=True, cordoned=frozenset({"eu-3"})) == ["eu-2", "eu-1"]
    assert ranked({"us-1"}, durable=True) == ["eu-2", "eu-1", "eu-3"]  # another region's holder
    full = [replace(o, memory_free_mib=0) if o.name == "eu-1" else o for o in offers]
    source = SnapshotSource("snap_1", frozenset({"eu-1"}), durable=False)
    with pytest.raises(SnapshotNotPlaceable) as refused:
        place_from_snapshot(full, "eu", Runtime.CONTAINER, SMALL, (), source)
    assert refused.value.details == {"snapshot": "snap_1", "region": "eu", "nodes": ["eu-1"]}
    assert "eu-1 (region eu)" in refused.value.message and "'durable': true" in refused.value.message
    with pytest.raises(SnapshotNotPlaceable, match="us-1 \\(region us\\)"):
        place_from_snapshot(
            offers, "eu", Runtime.CONTAINER, SMALL, (), replace(source, held_on=frozenset({"us-1"}))
        )
    with pytest.raises(SnapshotUnreachable, match="on no node that answers now"):
        place_from_snapshot(offers, "eu", Runtime.CONTAINER, SMALL, (), replace(source, held_on=frozenset()))
    with pytest.raises(NoCapacity):  # the region cannot take the shell at all: as any create
        place_from_snapshot(offers, "eu", Runtime.CONTAINER, BIG, (), source)
