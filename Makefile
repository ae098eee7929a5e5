# The two commands a newcomer needs: `make up` (install and start) and `make test` (the whole suite).
PY      := .venv/bin/python
STAMP   := .venv/.installed

.PHONY: up down cluster-up cluster-down test kube-apiserver-bg lint typecheck unit e2e bench system-deps console console-check screenshots sdk-ts

system-deps:
	scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

up: system-deps $(STAMP)
	scripts/up.sh

down:
	-@pid=$$(cat $${SHELLS_DATA_DIR:-$$HOME/.local/share/shells}/server.pid 2>/dev/null) && kill $$pid && echo "stopped server $$pid"

# A whole cluster on this machine (docs/cluster.md): Kubernetes API, PostgreSQL, two control-plane
# replicas behind a load balancer (HAProxy) and three node agents in two regions (one runs microvm),
# each node in its own network namespace.
cluster-up: system-deps $(STAMP)
	$(PY) -m tests.e2e.local_cluster up

cluster-down:
	$(PY) -m tests.e2e.local_cluster down

lint: $(STAMP)
	.venv/bin/ruff check src tests benchmarks scripts
	.venv/bin/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	.venv/bin/mypy

# Unit and in-process tests (the control layer, REST, MCP, both SDKs and the CLI on a fake node):
# no root needed; what needs root skips with its reason. One worker per CPU (pytest-xdist; another
# count: PYTEST_XDIST_AUTO_NUM_WORKERS=N), each module on one worker, so a module's fixtures are built once.
unit: $(STAMP)
	.venv/bin/pytest -q -rs -n auto --dist loadfile tests/unit tests/inprocess

e2e: system-deps $(STAMP)
	.venv/bin/pytest -q tests/e2e

# The Kubernetes API server the cluster tests use is built once per machine (minutes, cached); the
# build starts first, at low priority, and overlaps lint, types and the tests before the cluster's.
test: system-deps $(STAMP) kube-apiserver-bg lint typecheck sdk-ts
	.venv/bin/pytest -q -ra tests

kube-apiserver-bg:
	@mkdir -p $${SHELLS_CACHE_DIR:-$$HOME/.cache/shells}
	@nohup nice -n 19 scripts/build-kube-apiserver.sh >$${SHELLS_CACHE_DIR:-$$HOME/.cache/shells}/kube-apiserver-build.log 2>&1 &

bench: system-deps $(STAMP)
	$(PY) -m benchmarks.bench_container
	$(PY) -m benchmarks.bench_btrfs
	$(PY) -m benchmarks.bench_network
	$(PY) -m benchmarks.bench_sdk
	$(PY) -m benchmarks.bench_sdk_ts
	$(PY) -m benchmarks.bench_mcp

# The web console's bundle is committed (so `make up` and CI need no npm); this rebuilds it from the
# lockfile. console-check proves the committed bundle is what the build makes.
console:
	cd console && npm ci --no-audit --no-fund && node build.mjs

console-check: console
	git diff --exit-code -- src/shells/console

# Retake the README's console screenshots (docs/screenshots/) against a real server and browser.
screenshots: system-deps $(STAMP)
	SHELLS_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots .venv/bin/pytest -q tests/e2e/test_console.py -k screenshots

# The TypeScript SDK and the npx MCP server (sdk-ts/, docs/sdk-typescript.md): installed from the
# lockfile, built with tsc, packed into sdk-ts/packed/. tests/e2e/test_sdk_typescript.py runs them.
sdk-ts:
	cd sdk-ts && npm ci --no-audit --no-fund && npm run check-generated && npm run build && npm run pack
