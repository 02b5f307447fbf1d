# Stream Cart: `make run` serves on embedded defaults, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install media-tools run test lint format migrate demo clean

$(INSTALLED): pyproject.toml setup.py signaling/rtp/_sendpath.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/streamcart serve

# The media tests publish with the ffmpeg CLI and watch with headless Chromium, kept in a
# network namespace of its own (iproute2) so it can only reach loopback; the NAT tests
# route between namespaces through iptables and relay through coturn's turnserver; the
# HLS tests put deploy/nginx.conf's cache in front of the app with nginx and play it with
# hls.js, which they install from the npm registry (never committed).
media-tools:
	@command -v ffmpeg >/dev/null && command -v chromium >/dev/null && command -v ip >/dev/null \
	  && command -v iptables >/dev/null && command -v turnserver >/dev/null \
	  && command -v nginx >/dev/null && command -v npm >/dev/null || { \
	  echo "installing the Debian packages ffmpeg, chromium, iproute2, iptables, coturn, nginx-light and npm (media tests need them)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg chromium iproute2 iptables coturn nginx-light npm >/dev/null; }

test: $(INSTALLED) media-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

lint: $(INSTALLED)
	$(BIN)/ruff check .

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(INSTALLED)
	$(BIN)/streamcart migrate

demo: $(INSTALLED)
	$(BIN)/streamcart demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
