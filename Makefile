# Thin wrapper: every target calls the `ovnb` command or a standard tool. No logic lives here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= toy

.PHONY: setup book test reproduce clean

setup: $(VENV)/.ovnb-installed

$(VENV)/.ovnb-installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[book,dev,crf]'
	$(PY) -m ovnb.setup_env
	touch $@

book: setup
	$(PY) -m ovnb book --profile $(PROFILE)

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest

reproduce: setup
	$(PY) -m ovnb reproduce --profile $(PROFILE)

clean:
	rm -rf build book/_build book/_generated book/notebooks
