# Modtools Image: `make run` starts everything, `make test` runs the suite. Needs Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: run test test-browser test-scale bench lint format clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt requirements-nudenet.txt $(VENV)/.runtime
	$(PIP) -r requirements.txt -r requirements-dev.txt
	@touch $@

$(VENV)/.browser: requirements-browser.txt $(VENV)/.dev
	$(PIP) -r requirements-browser.txt
	@touch $@

run: $(VENV)/.runtime
	$(BIN)/flask --app wsgi db upgrade
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python wsgi.py

test: $(VENV)/.dev
	$(BIN)/python -m pytest

test-browser: $(VENV)/.browser
	$(BIN)/python -m pytest tests/browser -p no:cacheprovider

test-scale: $(VENV)/.dev
	$(BIN)/python -m pytest tests/scale -p no:cacheprovider

# The benchmarks that finish in under 10 minutes together (bench/README.md); run on a quiet
# machine and copy what they print into bench/results.md.
bench: $(VENV)/.dev
	$(BIN)/python bench/bench_pdq_hash.py --runs 200
	$(BIN)/python bench/bench_pdq_index.py --quick
	$(BIN)/python bench/bench_check.py --quick
	$(BIN)/python bench/bench_ingest.py --quick
	$(BIN)/python bench/bench_pipeline.py --quick
	$(BIN)/python bench/bench_review.py --quick
	$(BIN)/python bench/bench_memory.py

lint: $(VENV)/.dev
	$(BIN)/ruff check app plugins tests bench wsgi.py
	$(BIN)/ruff format --check app plugins tests bench wsgi.py

format: $(VENV)/.dev
	$(BIN)/ruff format app plugins tests bench wsgi.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
