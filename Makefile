# Two commands for a fresh machine with Python and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export QT_QPA_PLATFORM ?= offscreen
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint bench gui clean

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

bench: $(VENV)/.installed
	$(BIN)/python -m bench

gui: $(VENV)/.installed
	$(BIN)/semclust gui

clean:
	rm -rf $(VENV) .pytest_cache
