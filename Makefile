# FlowerHub: every target installs what it needs on a fresh machine.
#   make demo   - the main job (starts a local Kafka, runs the fleet scenario, audits it)
#   make test   - the whole test suite, integration tests on a real broker included, with
#                 coverage (child processes too) against the floor in pyproject.toml
#   make check  - exactly what CI runs: lint, types, layers, audit, then make test
#   make layers - the import contracts of pyproject.toml [tool.importlinter] (import-linter)
#   make audit  - pip-audit of the installed environment; one verdict line (tools/depaudit.py)
#   make lock   - re-resolve requirements.lock (dependencies + dev extra, hashed) with uv
#   make bench  - benchmarks; figures printed as ratios and written to bench-results.json
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_LIB := .cache/kafka/lib
KAFKA_STAMP := $(KAFKA_LIB)/.fetched
POM := flowerhub/broker/pom.xml
LOCK := requirements.lock

.PHONY: demo test check lint types layers audit lock bench install java kafka mqtt clean ui ui-browser promtool

install: $(STAMP)

# Exactly the locked versions (every file's hash checked), then the project itself, editable
# and without dependencies; `pip check` fails when pyproject.toml asks for something the lock
# lacks (then: make lock).
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python -m pip check || { echo "pyproject.toml asks for more than $(LOCK) holds: run make lock"; exit 1; }
	@touch $(STAMP)

# The newest versions pyproject.toml allows (dependencies and the dev extra), resolved for
# every platform and Python >= 3.11 (uv's universal resolution), each file's hash written.
# Then `make check`, and commit requirements.lock with the change that needed it.
lock:
	@test -x $(BIN)/uv || { test -x $(BIN)/python || $(PY) -m venv $(VENV); $(BIN)/python -m pip install --quiet 'uv>=0.5'; }
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command 'make lock' --quiet --output-file $(LOCK)

# Java 17 and Maven from Debian when the machine lacks them; mbpoll and kcat are the real
# Modbus and Kafka peers some tests talk to.
java:
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null || ! command -v mbpoll >/dev/null || ! command -v kcat >/dev/null; then \
	  echo "installing Java, Maven, mbpoll and kcat from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven mbpoll kcat >/dev/null; \
	fi

kafka: $(KAFKA_STAMP)

# Mosquitto (the homes' MQTT broker, `flowerhub mqtt start`) and its command-line clients
# from Debian when the machine lacks them.
mqtt:
	@if ! command -v mosquitto >/dev/null && ! test -x /usr/sbin/mosquitto || ! command -v mosquitto_pub >/dev/null; then \
	  echo "installing Mosquitto from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; \
	fi

# Apache Kafka's own jars (kafka_2.13 and its runtime dependencies) from Maven Central.
# The dir is emptied first so a version change in the pom never leaves two Kafkas on the
# classpath; jars are fetched into a temp dir and swapped in only when Maven succeeded.
$(KAFKA_STAMP): $(POM) | java
	@rm -rf $(KAFKA_LIB).tmp && mkdir -p $(KAFKA_LIB).tmp
	mvn -q -B -f $(POM) dependency:copy-dependencies -DoutputDirectory=$(abspath $(KAFKA_LIB)).tmp -DincludeScope=runtime
	@rm -rf $(KAFKA_LIB) && mv $(KAFKA_LIB).tmp $(KAFKA_LIB)
	@touch $(KAFKA_STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

# import-linter: the layers of shared/design.md, test support kept out of production code,
# pure modules free of Kafka/Faust/Modbus clients, no import circles. No exception lists.
layers: install
	$(BIN)/lint-imports --no-cache

# Exit status: 0 audited clean, or NOT PERFORMED when no advisory service answers (the last
# line says which); 1 known vulnerabilities; 2 NOT PERFORMED with FLOWERHUB_AUDIT_REQUIRED=1.
audit: install
	$(BIN)/python -m tools.depaudit

# Prometheus' promtool from Debian's prometheus package, unpacked into .cache (not installed:
# the package would start a Prometheus server); tests/contract/test_deploy.py runs
# `promtool check config deploy/prometheus.yml` with it.
PROMTOOL := .cache/promtool/root/usr/bin/promtool

promtool: $(PROMTOOL)

$(PROMTOOL):
	@rm -rf .cache/promtool && mkdir -p .cache/promtool
	@echo "fetching promtool (Debian's prometheus package)"
	@cd .cache/promtool && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }; }
	dpkg-deb -x .cache/promtool/prometheus_*.deb .cache/promtool/root
	@rm -f .cache/promtool/prometheus_*.deb
	@test -x $(PROMTOOL)

# Coverage is measured in this one run, child processes included ([tool.coverage] in
# pyproject.toml); below the floor there the run fails. TEST_WORKERS pytest-xdist workers
# (each starts its own session broker) take one test file at a time, the longest first
# (tests/conftest.py RUN_FIRST); TEST_WORKERS=0 runs everything in this one process.
TEST_WORKERS ?= 2
test: install kafka mqtt ui ui-browser promtool
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	  --cov --cov-report=term

check: lint types layers audit test

demo: install kafka mqtt ui
	$(BIN)/flowerhub demo

bench: install kafka mqtt ui ui-browser
	$(BIN)/python -m bench

clean:
	-$(BIN)/flowerhub broker stop
	-$(BIN)/flowerhub mqtt stop
	rm -rf .cache/kafka/run

# ---------------------------------------------------------------- UI (flowerhub ui)
# The page's libraries (uPlot, Tabulator) from the npm registry, exactly as locked; no
# bundler: the server serves their ES-module builds from node_modules.
UI_WEB := flowerhub/ui/web
UI_STAMP := $(UI_WEB)/node_modules/.installed

ui: $(UI_STAMP)

$(UI_STAMP): $(UI_WEB)/package.json $(UI_WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "installing Node.js and npm from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix $(UI_WEB) --no-audit --no-fund --loglevel=error
	@touch $(UI_STAMP)

# Debian's chromium for the browser tests and the UI benchmark (Playwright drives it by its
# path; a browser download by Playwright is impossible here and never attempted).
ui-browser:
	@command -v chromium >/dev/null || { echo "installing chromium from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null; }
