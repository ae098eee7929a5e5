#!/usr/bin/env bash
# Builds kube-apiserver 1.20.2 from Debian bookworm's own source package with Debian's Go, once per
# machine, into ~/.cache/shells/kubernetes-1.20.2/bin (no prebuilt Kubernetes server is reachable
# from here). The tests run it with Debian's etcd; see docs/cluster.md. Idempotent: a cached binary
# is reused. Needs root for apt (golang-go, rsync, etcd-server come from install-system-deps.sh).
set -euo pipefail
VERSION=1.20.2
SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE=${SHELLS_CACHE_DIR:-$HOME/.cache/shells}/kubernetes-$VERSION
OUT=$CACHE/bin/kube-apiserver
mkdir -p "$CACHE"
# One build at a time: `make test` starts one in the background and the tests' fixture waits for it.
exec 8>"$CACHE.lock"
flock 8
if [ -x "$OUT" ]; then
  echo "kube-apiserver $VERSION: cached at $OUT"
  exit 0
fi
W=$(mktemp -d /var/tmp/shells-k8sbuild.XXXXXX)
trap 'rm -rf "$W"' EXIT
command -v go >/dev/null && command -v rsync >/dev/null || {
  echo "kube-apiserver: needs golang-go and rsync (scripts/install-system-deps.sh)" >&2
  exit 1
}
mkdir -p "$W/apt/lists/partial" "$W/apt/cache/archives/partial"
echo "deb-src http://deb.debian.org/debian bookworm main" >"$W/apt/sources.list"
O=(-o "Dir::Etc::SourceList=$W/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$W/apt/lists" -o "Dir::Cache=$W/apt/cache")
cd "$W"
apt-get "${O[@]}" -qq update
apt-get "${O[@]}" -qq source --download-only "kubernetes=$SRC_VERSION"
tar xzf "kubernetes_1.20.5+really$VERSION.orig.tar.gz"
# The vendored reflect2 1.0.1 crashes under Go >= 1.18 on the first map encode; Debian ships 1.0.2.
apt-get -qq download golang-github-modern-go-reflect2-dev
dpkg -x golang-github-modern-go-reflect2-dev_*.deb r2
V=kubernetes-$VERSION/vendor/github.com/modern-go/reflect2
rm -f "$V"/*.go "$V"/*.s
cp r2/usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$V"/
cp r2/usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$V"/ 2>/dev/null || true
cd "kubernetes-$VERSION"
CGO_ENABLED=0 GOPROXY=off GOFLAGS= make WHAT=cmd/kube-apiserver >"$W/build.log" 2>&1 || {
  tail -40 "$W/build.log" >&2
  exit 1
}
mkdir -p "$CACHE/bin"
install -m 0755 _output/bin/kube-apiserver "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "kube-apiserver $VERSION: built into $OUT"
