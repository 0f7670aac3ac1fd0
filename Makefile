# Everything runs from a project-local virtualenv that the targets create themselves, so a fresh
# machine with only Rust and Python needs nothing else.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# maturin builds into the venv found in VIRTUAL_ENV.
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: demo test build dev lint fmt rust-test loom py-test notebooks bench bench-instructions clean

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "maturin>=1.16,<2"

# The dev tools are declared once, as pyproject's `dev` extra; only the tools are installed here
# (the package itself is built by maturin below).
$(VENV)/.dev: $(VPY) pyproject.toml
	$(VPY) -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']))" > $(VENV)/dev-requirements.txt
	$(VPY) -m pip install -q -r $(VENV)/dev-requirements.txt
	touch $@

build: $(VPY)
	$(VENV)/bin/maturin develop --release -q

dev: $(VENV)/.dev build

demo: build
	$(VPY) -m chanpool

lint: $(VENV)/.dev
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests bench notebooks
	$(VENV)/bin/ruff format --check python tests bench notebooks
	$(VPY) -m mypy.stubtest chanpool._core --allowlist stubtest-allowlist.txt
	$(VPY) -m mypy python/chanpool

rust-test:
	cargo test --quiet

# The hand-written synchronisation under loom's model checker (tests named loom_*), with a
# bounded number of preemptions so it finishes in minutes; its own target dir keeps the normal
# build cached.
loom:
	RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
		cargo test --quiet --release --lib loom_

py-test: dev
	$(VPY) -m pytest tests -q

test: dev lint rust-test loom py-test

# Runs every notebook top to bottom on the venv's kernel (also part of py-test); CHANPOOL_NB_SCALE
# scales the sizes up for real measurements.
notebooks: dev
	$(VPY) -m pytest tests/test_notebooks.py -q

bench: build
	$(VPY) -m pip install -q blinker pyee   # the pub/sub benchmark's synchronous anchors
	$(VPY) -m pip install -q janus culsans aiochannel   # bench/aio.py's anchors
	$(VPY) -m pip install -q cachetools   # bench/structured.py's cache anchor
	for b in bench/[a-z]*.py; do [ $$b = bench/instructions.py ] || $(VPY) $$b || exit 1; done

# Instructions per operation under callgrind: figures that do not move with machine load.
bench-instructions: build
	@command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 2; }
	$(VPY) bench/instructions.py

fmt: $(VENV)/.dev
	cargo fmt --all
	$(VENV)/bin/ruff format python tests bench notebooks

clean:
	rm -rf $(VENV) target python/chanpool/*.so
