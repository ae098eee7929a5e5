"""The metrics ring: CPU rates from cumulative readings, the bound, a time range, and its bytes."""

from __future__ import annotations

from shells.domain.samples import ResourceUsage, SampleRing


def test_cpu_is_a_rate_between_readings_and_restarts_after_a_gap() -> None:
    ring = SampleRing(size=100)
    assert ring.add(10.0, ResourceUsage(1.0, 100, 5)).cpu_percent is None  # nothing to compare yet
    assert ring.add(12.0, ResourceUsage(2.0, 100, 5)).cpu_percent == 50.0
    assert ring.add(14.0, ResourceUsage(None, None, 5)).cpu_percent is None  # paused: no process
    assert ring.add(16.0, ResourceUsage(0.5, 90, 5)).cpu_percent is None  # a new QEMU counts from 0
    assert ring.add(18.0, ResourceUsage(2.5, 90, 5)).cpu_percent == 100.0


def test_the_ring_keeps_the_newest_and_selects_a_range() -> None:
    ring = SampleRing(size=3)
    for t in range(5):
        ring.add(float(t), ResourceUsage(None, t, None))
    assert [s.at for s in ring.samples] == [2.0, 3.0, 4.0]
    assert [s.at for s in ring.between(3.0, None)] == [3.0, 4.0]
    assert [s.at for s in ring.between(None, 2.5)] == [2.0]


def test_the_ring_survives_its_bytes_and_ignores_a_torn_tail() -> None:
    ring = SampleRing(size=10)
    ring.add(1.0, ResourceUsage(1.0, 100, None))
    ring.add(2.0, ResourceUsage(1.5, None, 7))
    data = ring.to_bytes()
    back = SampleRing.from_bytes(data + b"\x00" * 5)
    assert list(back.samples) == list(ring.samples)
    assert list(SampleRing.from_bytes(data, size=1).samples) == [ring.samples[-1]]
