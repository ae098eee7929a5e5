#!/usr/bin/env bash
# Installs the MCP Inspector's command line (an MCP client written by others, which the tests point
# at the server) into DIR, with the Node.js it needs (>= 22, newer than Debian 12's), both from the
# npm registry. Idempotent: a DIR that holds these versions is left alone. Needs npm
# (scripts/install-system-deps.sh installs Debian's when there is none).
set -euo pipefail
DIR=${1:?usage: install-mcp-inspector.sh DIR}
NODE_VERSION=22.23.3
INSPECTOR_VERSION=2.12.0
STAMP="$DIR/.installed-$NODE_VERSION-$INSPECTOR_VERSION"
[ -e "$STAMP" ] && exit 0
command -v npm >/dev/null || { echo "needs npm: run scripts/install-system-deps.sh" >&2; exit 1; }
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "node@$NODE_VERSION"
# The inspector's install scripts must run under the new Node, not the system's.
PATH="$DIR/node_modules/node/bin:$PATH" npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error \
  "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
"$DIR/node_modules/node/bin/node" --version >/dev/null
touch "$STAMP"
