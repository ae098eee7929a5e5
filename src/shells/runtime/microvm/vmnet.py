"""A microvm's network: the guest behind a tap device inside the shell's own network namespace.

Every VM gets the same NIC and the same guest-side addresses (``GUEST_IP`` behind ``TAP_IP``, set by
the initramfs), so a pre-booted template works for any shell and a fork needs no renumbering. What
differs per shell is the namespace QEMU runs in: the one the dataplane (``network/dataplane.py``)
gives every shell, container or VM, with its routed ports and all the host-side rules. Inside it
the guest is routed and masqueraded to the shell's own addresses, DNS to the tap address goes to the
instance resolver, and what arrives for the shell's addresses (exposed ports, private-network
peers) is forwarded to the guest. So every mode, allow list and live policy change of the container
class applies unchanged; ``sealed`` gives the namespace no port, and the guest's packets go nowhere.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ...domain.errors import RuntimeFailure
from ..backend import ShellSpec
from ..host import netns
from ..network.dataplane import HostNetwork

TAP = "vm0"
TAP_IP = "192.168.127.1"
GUEST_IP = "192.168.127.2"
PREFIX = 30
GUEST_MAC = "52:54:00:5e:11:02"
TAP_MAC = "52:54:00:5e:11:01"
"""Fixed, because a restored or forked guest still has the tap's address in its ARP cache."""
GUEST_SETUP = (
    "echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6; "  # not routed; spares DAD after each restore
    f"ip link set eth0 up; ip addr add {GUEST_IP}/{PREFIX} dev eth0; "
    f"ip route add default via {TAP_IP}; "
    f"rm -f /newroot/etc/resolv.conf; echo 'nameserver {TAP_IP}' > /newroot/etc/resolv.conf"
)
"""What the initramfs runs for the guest side (before switch_root)."""


def _ruleset(nameserver: str) -> str:
    return f"""table ip shells_vm
flush table ip shells_vm
table ip shells_vm {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{TAP}" ip daddr {TAP_IP} meta l4proto {{ tcp, udp }} th dport 53 dnat to {nameserver}
    iifname != "{TAP}" fib daddr type local dnat to {GUEST_IP}
  }}
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname != "{TAP}" masquerade
  }}
}}
"""


class VmNetwork:
    def __init__(self, network: HostNetwork, netns_dir: Path) -> None:
        self.network = network
        self.netns_dir = netns_dir

    def netns(self, host_id: str) -> Path:
        return self.netns_dir / host_id

    def make_netns(self, host_id: str) -> None:
        """The shell's namespace, bare (QEMU can start in it); ``attach`` gives it the rest."""
        path = self.netns(host_id)
        if not path.exists():
            netns.create_sealed_netns(str(path))

    def attach(self, spec: ShellSpec) -> None:
        """The shell's namespace with what its policy allows (idempotent: kept across pauses)."""
        if self.network.policy_of(spec.host_id) is not None:
            return
        self.make_netns(spec.host_id)
        self.network.attach(
            spec.host_id,
            str(self.netns(spec.host_id)),
            spec.network,
            spec.networks,
            spec.hostname,
            brokered=spec.brokered,
        )

    def wire(self, host_id: str) -> None:
        """After QEMU created its tap in the namespace: address it, route and forward to the guest."""
        nameserver = self.network.addresses(host_id).nameserver
        script = (
            f"ip link set {TAP} address {TAP_MAC} && ip addr replace {TAP_IP}/{PREFIX} dev {TAP} && "
            f"ip link set {TAP} up && "
            "sysctl -qw net.ipv4.ip_forward=1 && nft -f -"
        )
        proc = subprocess.run(
            ["nsenter", f"--net={self.netns(host_id)}", "sh", "-c", script],
            input=_ruleset(str(nameserver)), capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeFailure(f"Wiring the VM's network failed: {proc.stderr.strip()[-1000:]}")

    def detach(self, host_id: str) -> None:
        self.network.detach(host_id)
        netns.remove_netns(str(self.netns(host_id)))
