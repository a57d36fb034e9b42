# hubagent: the two commands that do all set-up on a fresh Debian / Raspberry Pi OS machine.
#   make run    set up, then start the daemon with every device simulated
#   make test   set up, type-check (mypy), then run the whole test suite (real Mosquitto and NUT servers)
#   make install  set up only; leaves .venv/bin/hubagent

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# Debian packages: the brokers (Mosquitto, ejabberd's mod_mqtt), UPS server and PostgreSQL the
# tests start, zbar for the camera decoder, Chromium and its driver for the web pages' tests.
SYSTEM_PACKAGES := mosquitto nut-server nut-client libzbar0 postgresql ejabberd chromium chromium-driver
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

# mypy checks the package as installed: drivers/ and sim/ install as
# hubagent.drivers and hubagent.sim, so it reads a tree of links of that shape.
TYPECHECK_TREE := build/typecheck

.PHONY: install run test typecheck bench system-deps clean

install: system-deps $(STAMP)

system-deps:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

run: install
	$(VENV)/bin/hubagent run --sim

test: install typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

typecheck: install
	@rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/hubagent
	@for f in hubagent/*; do ln -s "$(CURDIR)/$$f" $(TYPECHECK_TREE)/hubagent/; done
	@ln -s "$(CURDIR)/drivers" $(TYPECHECK_TREE)/hubagent/drivers
	@ln -s "$(CURDIR)/sim" $(TYPECHECK_TREE)/hubagent/sim
	cd $(TYPECHECK_TREE) && "$(CURDIR)/$(VENV)/bin/mypy" --config-file "$(CURDIR)/pyproject.toml" -p hubagent

bench: install
	$(VENV)/bin/hubagent bench

clean:
	rm -rf $(VENV) state build .pytest_cache .hypothesis .mypy_cache
