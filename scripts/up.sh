#!/usr/bin/env bash
# `make up`: start (or confirm) a Shells server with embedded defaults. Safe to re-run.
set -euo pipefail
DATA_DIR="${SHELLS_DATA_DIR:-$HOME/.local/share/shells}"
HOST="${SHELLS_HOST:-127.0.0.1}"
PORT="${SHELLS_PORT:-8080}"
BIN="$(pwd)/.venv/bin/shells"
mkdir -p "$DATA_DIR"
ln -sf "$BIN" /usr/local/bin/shells 2>/dev/null || true
url="http://$HOST:$PORT"
if curl -fsS "$url/v1/info" >/dev/null 2>&1; then
  echo "Shells is already running at $url"
else
  echo "Preparing the host and the default template python:1 (the first time takes a few minutes)..."
  "$BIN" prepare --data-dir "$DATA_DIR"
  nohup "$BIN" serve --data-dir "$DATA_DIR" --host "$HOST" --port "$PORT" >>"$DATA_DIR/server.log" 2>&1 &
  echo $! >"$DATA_DIR/server.pid"
  for _ in $(seq 1 600); do
    curl -fsS "$url/v1/info" >/dev/null 2>&1 && break
    kill -0 "$(cat "$DATA_DIR/server.pid")" 2>/dev/null || { echo "the server exited; see $DATA_DIR/server.log" >&2; tail -20 "$DATA_DIR/server.log" >&2; exit 1; }
    sleep 0.2
  done
  curl -fsS "$url/v1/info" >/dev/null || { echo "the server did not answer; see $DATA_DIR/server.log" >&2; exit 1; }
  echo "Shells is running at $url (log: $DATA_DIR/server.log)"
fi
cat <<TXT

  export SHELLS_BASE_URL=$url SHELLS_API_TOKEN=\$(cat $DATA_DIR/admin-token)
  shells create --language python --runtime container
TXT
