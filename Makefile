# farfield: set-up, build, test, benchmarks. Everything installs into .venv from PyPI/crates.io.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(BIN):$(PATH)

.PHONY: all venv develop demo docs browser test test-rust lint test-python test-fast fuzz bench bench-compare wheel test-wheel clean

all: develop

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q --group dev
	touch $@

venv: $(VENV)/.installed

develop: venv
	$(BIN)/maturin develop --release --quiet

# Madelung constants, then the main demonstration (farfield._demos point-charges: LODE vs local
# features on random point charges, ~1 min on 2 cores); table and plot in ./farfield-demo-point-charges
demo: develop
	$(BIN)/python examples/demo.py

# the documentation site (mkdocs-material) into site/, offline; open site/index.html
docs: venv
	$(BIN)/python -m pip install -q --group docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# property-based robustness harnesses: a bounded budget here, a larger one in `make fuzz`
FUZZ_CASES ?= 24

test-rust:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo package -p farfield --no-verify --allow-dirty -q
	PROPTEST_CASES=$(FUZZ_CASES) PROPTEST_RNG_SEED=20261207 cargo test -p farfield

# stubtest compares python/farfield/_native.pyi with the extension just built (hence `develop`)
lint: develop
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests
	$(BIN)/mypy --strict python/farfield
	$(BIN)/python -m mypy.stubtest farfield._native

# Chromium (Debian's package) for the headless check of the documentation site in
# tests/test_docs.py: installed when missing and this is a Debian machine run as root; otherwise
# that one test is skipped with a message
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (Debian) for the documentation check"; \
		(apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)) || \
		echo "could not install chromium: the headless documentation check will be skipped"; \
	else echo "no chromium: the headless documentation check will be skipped"; fi

test-python: develop browser
	FARFIELD_FUZZ_EXAMPLES=$(FUZZ_CASES) $(BIN)/python -m pytest -q tests

# the Python tests without those marked slow (> ~3 s each): a quick check while editing
test-fast: develop
	FARFIELD_FUZZ_EXAMPLES=$(FUZZ_CASES) $(BIN)/python -m pytest -q -m "not slow" tests

fuzz: develop
	PROPTEST_CASES=1000 cargo test -p farfield --release --test robustness
	PROPTEST_CASES=300 FARFIELD_FUZZ_RANDOM=1 cargo test -p farfield --release --test invariances
	FARFIELD_FUZZ_EXAMPLES=400 FARFIELD_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q tests/test_fuzz.py

test: develop test-rust lint test-python test-wheel

bench: develop
	$(BIN)/python -m pip install -q -r benches/python/requirements.txt
	cargo bench -p farfield-bench --benches -- --quick
	for f in benches/python/bench_*.py; do $(BIN)/python $$f || exit 1; done
	$(BIN)/python benches/python/bench_pme.py --system water --accuracy 1.2e-4

# engine benchmarks (quick configurations) on this build and an older one, interleaved, with
# new/old time ratios: build the old commit in its own worktree and venv first, e.g.
#   git worktree add /work/wt-old a7792da && cp -a .venv /work/wt-old/.venv &&
#   (cd /work/wt-old && VIRTUAL_ENV=$$PWD/.venv .venv/bin/maturin develop --release)
# (in a copied venv run pip as .venv/bin/python -m pip: the scripts point at the original)
OLD_TREE ?= ../wt-old
bench-compare: develop
	$(BIN)/python benches/python/compare_builds.py --old $(OLD_TREE)/.venv/bin/python \
		--old-benches $(OLD_TREE)/benches/python

# an abi3 wheel (CPython >= 3.10) in dist/, tagged manylinux by maturin's own auditwheel check
wheel: venv
	rm -f dist/farfield-*.whl
	$(BIN)/maturin build --release --out dist

# installs that wheel in a fresh venv (no source tree on the path) and runs every engine's
# README quickstart (tests/test_wheel.py; part of `make test`, skipped by test-python itself)
test-wheel: wheel
	FARFIELD_TEST_WHEEL="$$(ls dist/farfield-*.whl)" $(BIN)/python -m pytest -q -m wheel tests/test_wheel.py

clean:
	rm -rf $(VENV) target
