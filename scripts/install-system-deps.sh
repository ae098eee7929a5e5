#!/usr/bin/env bash
# Installs the Debian packages Shells needs on the host (idempotent; needs root).
set -euo pipefail
PACKAGES=(
  crun            # the OCI runtime behind the container class
  btrfs-progs     # mkfs.btrfs for the storage pool
  debootstrap     # builds template root filesystems from Debian's archive
  zstd            # compresses cached template tarballs
  e2fsprogs       # mkfs.ext4 -d: a template as an ext4 image (microvm class); e2fsck/debugfs in tests
  nftables iproute2 util-linux procps psmisc
  libnftables1    # the network dataplane applies nftables in-process (ctypes)
  iperf3          # benchmarks/bench_network.py: throughput through the shells' NAT
  libseccomp2     # compiles the seccomp policy once (through ctypes)
  podman          # only as the benchmark baseline ("podman run --rm")
  qemu-system-x86 qemu-utils  # the microvm class: the VMM and qcow2 overlays
  busybox-static lz4          # the microvm initramfs; unpacking the guest kernel
  curl ca-certificates
  chromium        # tests/e2e/test_console.py drives the web console headless (Playwright, executable_path)
  postgresql-15   # tests: the record on PostgreSQL (a cluster's control plane); one box keeps SQLite
  etcd-server golang-go rsync  # tests: a real Kubernetes API (scripts/build-kube-apiserver.sh builds it)
  docker-registry # tests: the CNCF distribution registry that OCI import and export talk to (TLS, basic auth)
  skopeo          # benchmarks/bench_oci.py: the baseline copy of an image from the local registry
  apache2-utils   # tests: htpasswd for the local registry's basic auth
  musl-tools      # tests: a musl-linked ("alpine-like") program for an image without glibc or Python
  fuse3           # bucket mounts: fusermount3, which rclone mount uses to mount and unmount the bucket
  haproxy         # make cluster-up: the load balancer in front of the local cluster's control replicas
)
# npm installs the MCP Inspector for the tests (scripts/install-mcp-inspector.sh); a host with a Node.js
# of its own (and its npm) keeps it.
command -v npm >/dev/null || PACKAGES+=(nodejs npm)
# tests: kubectl's built-in kustomize builds deploy/ (a host with a kubectl of its own keeps it)
command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Shells needs root to install: ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
