"""Rates: what one second of a running shell costs, by isolation class. Pure arithmetic in ``Decimal``
so a bill is exact to the last digit (floats would drift over a month of seconds).

The microvm rate is the CreateOS reference ($0.0504 per vCPU-hour plus $0.0162 per GiB-RAM-hour);
container and wasm cost a configurable fraction of it, because their walls are cheaper to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .isolation import Runtime

SECONDS_PER_HOUR = Decimal(3600)
MIB_PER_GIB = Decimal(1024)
MICRO = Decimal("0.000001")
"""Money is reported in micro-dollars (six decimal places), rounded half up once, at the end."""

REFERENCE_VCPU_HOUR = Decimal("0.0504")
REFERENCE_GIB_HOUR = Decimal("0.0162")
DEFAULT_CONTAINER_FACTOR = Decimal("0.5")
DEFAULT_WASM_FACTOR = Decimal("0.25")
DEFAULT_SNAPSHOT_GIB_MONTH = Decimal("0.05")


@dataclass(frozen=True)
class ClassRates:
    """The price of one isolation class, per hour (what people compare) and per second (what is billed)."""

    vcpu_hour: Decimal
    gib_hour: Decimal

    def cost(self, seconds: Decimal, vcpus: Decimal, memory_mib: int) -> Decimal:
        """Exact cost of ``seconds`` of a shell holding ``vcpus`` and ``memory_mib``."""
        gib = Decimal(memory_mib) / MIB_PER_GIB
        return seconds * (vcpus * self.vcpu_hour + gib * self.gib_hour) / SECONDS_PER_HOUR

    def to_public(self) -> dict[str, str]:
        return {
            "vcpu_hour_usd": rate(self.vcpu_hour),
            "gib_hour_usd": rate(self.gib_hour),
            "vcpu_second_usd": rate(self.vcpu_hour / SECONDS_PER_HOUR),
            "gib_second_usd": rate(self.gib_hour / SECONDS_PER_HOUR),
        }


@dataclass(frozen=True)
class RateCard:
    """Every class's rates, and snapshot storage."""

    classes: dict[Runtime, ClassRates]
    snapshot_gib_month: Decimal

    @classmethod
    def from_reference(
        cls,
        *,
        vcpu_hour: Decimal = REFERENCE_VCPU_HOUR,
        gib_hour: Decimal = REFERENCE_GIB_HOUR,
        container_factor: Decimal = DEFAULT_CONTAINER_FACTOR,
        wasm_factor: Decimal = DEFAULT_WASM_FACTOR,
        snapshot_gib_month: Decimal = DEFAULT_SNAPSHOT_GIB_MONTH,
    ) -> RateCard:
        """microvm at the given rates, container and wasm at their factors of it."""
        factors = {
            Runtime.MICROVM: Decimal(1),
            Runtime.CONTAINER: container_factor,
            Runtime.WASM: wasm_factor,
        }
        return cls(
            classes={r: ClassRates(vcpu_hour * f, gib_hour * f) for r, f in factors.items()},
            snapshot_gib_month=snapshot_gib_month,
        )

    def rates(self, runtime: Runtime) -> ClassRates:
        return self.classes[runtime]


def money(amount: Decimal) -> str:
    """The wire form of an amount of dollars: six decimal places, rounded half up."""
    return str(amount.quantize(MICRO, rounding="ROUND_HALF_UP"))


def rate(amount: Decimal) -> str:
    """The wire form of a rate: every significant digit, no exponent, no trailing zeros."""
    return format(amount.normalize(), "f")
