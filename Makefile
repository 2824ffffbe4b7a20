# Two commands do all set-up on a fresh machine:
#   make demo   trains GWAE on the embedded digits and leaves figures and metrics in runs/
#   make test   ruff, the strict docs build and the whole test suite
# Override the torch requirement for CUDA builds:  make test TORCH=torch
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install demo test lint docs bench reproduce clean

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
demo: $(STAMP)
	$(BIN)/python examples/gwae_celeba.py --dataset digits --image-size 16 --max-steps 400 \
		--n-critic 2 --lr 5e-4 --critic-lr 2.5e-4 --lambda-w 10 --lambda-h 0.1 \
		--prior normal --latent-dim 8 --out runs/gwae-digits --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

test: lint docs
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks

reproduce: $(STAMP)
	$(BIN)/python -m benchmarks.reproduce

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache .hypothesis
