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

.PHONY: demo test check lint types bench install java kafka mqtt clean

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

test: install kafka mqtt
	$(BIN)/python -m pytest

check: lint types test

demo: install kafka mqtt
	$(BIN)/flowerhub demo

bench: install kafka mqtt
	$(BIN)/python -m bench

clean:
	-$(BIN)/flowerhub broker stop
	-$(BIN)/flowerhub mqtt stop
	rm -rf .cache/kafka/run
