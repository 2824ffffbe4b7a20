# Two commands do all set-up on a fresh machine:
#   make demo   trains GWAE on the embedded digits and leaves figures and metrics in runs/
#   make test   ruff, the strict docs build and the whole test suite (what CI runs)
# For the edit loop, make test-fast runs the tests not marked slow.
# Override the torch requirement for CUDA builds:  make test TORCH=torch
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-fast lint docs dist katex bench gpu-check reproduce clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,docs,examples]"
	touch $(STAMP)

install: $(STAMP)

# GWAE on the embedded digits (8x8 scans shown at 16x16), in the paper's ranges
# (lambda_W = 10, lambda_H = 0.1, standard-normal prior as in its MNIST isometry figure,
# L = 8) with faster RMSprop rates and 2 critic steps, so that it learns within a few
# hundred steps (about 1.5 min on 2 cores); figures and metrics land in runs/gwae-digits.
# The encoder is normalised by its aggregated posterior (the paper's C.2): without it, 400
# steps leave q(z) a shrunken, shifted part of N(0, I), and the prior samples outside it
# decode to salt-and-pepper noise in samples.png.
demo: $(STAMP)
	$(BIN)/python examples/gwae_celeba.py --dataset digits --image-size 16 --max-steps 400 \
		--n-critic 2 --lr 5e-4 --critic-lr 2.5e-4 --lambda-w 10 --lambda-h 0.1 \
		--prior normal --aggregated-norm --latent-dim 8 --out runs/gwae-digits --overwrite

# The sdist and the wheel of the distribution torch-otloss (import name otloss) in dist/,
# built with the venv's setuptools (no download); the wheel is built from the sdist.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

lint: $(STAMP)
	$(BIN)/ruff check .

# No --quiet: it drops the warnings that --strict turns into a failed build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir $(VENV)/site

# KaTeX renders the docs' maths offline from docs/assets/katex (committed, so that building
# the docs needs no network): the npm package's minified script and style sheet and its woff2
# fonts, the style sheet's woff/ttf fallbacks dropped. `make katex` refreshes the copy.
KATEX_VERSION ?= 0.19.1
KATEX_DIR := docs/assets/katex
katex:
	rm -rf $(KATEX_DIR) && mkdir -p $(KATEX_DIR)/fonts
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q katex@$(KATEX_VERSION) >/dev/null \
		&& tar xzf katex-$(KATEX_VERSION).tgz) \
	&& cp $$tmp/package/LICENSE $$tmp/package/dist/katex.min.js $(KATEX_DIR)/ \
	&& cp $$tmp/package/dist/fonts/*.woff2 $(KATEX_DIR)/fonts/ \
	&& sed -E 's/,url\(fonts\/[A-Za-z0-9_-]+\.(woff|ttf)\) format\("(woff|truetype)"\)//g' \
		$$tmp/package/dist/katex.min.css > $(KATEX_DIR)/katex.min.css \
	&& echo "KaTeX $(KATEX_VERSION), npm package katex (make katex)" > $(KATEX_DIR)/VERSION \
	&& rm -rf $$tmp

test: lint docs
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# The edit loop: the suite without the tests marked slow (training runs, long statistics);
# make test (and CI) runs them all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m benchmarks

# On a CUDA machine, under 8 minutes: the CUDA-marked tests, a host-synchronisation check of
# every divergence, CUDA timings, then the whole suite with OTLOSS_TEST_DEVICE=cuda; writes
# the CUDA section of docs/benchmarks.md. Without CUDA it says so and exits 0. Install a CUDA
# build first (make install TORCH=torch on a fresh clone), or run
# `python -m benchmarks.gpu_check` with a Python that has one.
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu_check

# The papers' evaluations; BUDGET scales every step count (20: about 20 minutes on two idle
# cores; docs/results.md comes from the hour-long run, BUDGET=60).
BUDGET ?= 20
reproduce: $(STAMP)
	$(BIN)/python -m benchmarks.reproduce --budget-minutes $(BUDGET)

clean:
	rm -rf $(VENV) site dist build .pytest_cache .ruff_cache .hypothesis
