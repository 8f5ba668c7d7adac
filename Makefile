# Two entry points that work on a fresh Debian machine (as root):
#   make demo  - install what the stack needs, start it, run the main job
#   make test  - install what the tests need, start the services, run the whole suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv host test demo lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,vm]'
	touch $@

venv: $(VENV)/.installed

# apt packages and background services (dockerd, registry, postgresql, libvirtd)
host:
	bash deploy/host-setup.sh

test: host venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check engine workers components tests bench
	$(VENV)/bin/mypy

demo: host venv
	bash deploy/demo.sh

bench: venv
	$(PY) bench/api.py
	$(PY) bench/toe.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
