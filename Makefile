# FlowerHub: every target installs what it needs on a fresh machine.
#   make demo   - the main job (starts a local Kafka, runs the fleet scenario, audits it)
#   make test   - the whole test suite, integration tests on a real broker included
#   make check  - exactly what CI runs: ruff, mypy (strict), then make test
#   make bench  - benchmarks; figures printed as ratios and written to bench-results.json
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_LIB := .cache/kafka/lib
KAFKA_STAMP := $(KAFKA_LIB)/.fetched
POM := flowerhub/broker/pom.xml

.PHONY: demo test check lint types bench install java kafka clean ui ui-browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Java 17 and Maven from Debian when the machine lacks them; mbpoll and kcat are the real
# Modbus and Kafka peers some tests talk to.
java:
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null || ! command -v mbpoll >/dev/null || ! command -v kcat >/dev/null; then \
	  echo "installing Java, Maven, mbpoll and kcat from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven mbpoll kcat >/dev/null; \
	fi

kafka: $(KAFKA_STAMP)

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

test: install kafka ui ui-browser
	$(BIN)/python -m pytest

check: lint types test

demo: install kafka ui
	$(BIN)/flowerhub demo

bench: install kafka ui ui-browser
	$(BIN)/python -m bench

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

clean:
	-$(BIN)/flowerhub broker stop
	rm -rf .cache/kafka/run
