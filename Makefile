# Two commands for a fresh machine with Python and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export QT_QPA_PLATFORM ?= offscreen
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint bench bench-digits gui clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/semclust demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check core gui tests bench
	$(BIN)/ruff format --check core gui tests bench

# The full benchmark: 3 data sets x 3 seeds, every method (about 6-7 hours on 2 cores).
bench: $(VENV)/.installed
	$(BIN)/python -m bench

# One data set, one seed (about 20 minutes on 2 cores); merges into BENCHMARKS.md.
bench-digits: $(VENV)/.installed
	$(BIN)/python -m bench --only quality --datasets digits --seeds 1
	$(BIN)/python -m bench --only report

gui: $(VENV)/.installed
	$(BIN)/semclust gui

clean:
	rm -rf $(VENV) .pytest_cache
