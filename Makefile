# `make serve` and `make test` each set everything up on a fresh machine (Python 3.11 + pip), then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Two environments in one venv: serving needs only the package's base dependencies; tests and training add the
# [train,dev] extras. A full install also serves, so it marks both.
SERVE_STAMP := $(VENV)/.installed-serve-stamp
STAMP := $(VENV)/.installed-stamp
# The torch build that lies on disk here (a CUDA build that also runs on the CPU). For a CPU-only build, point
# pip at an index that has one: make serve TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
# make serve PORT=8080 HOST=0.0.0.0 CHECKPOINT=runs/mine/best.pt (each left out: chexnet serve's default, or the
# CHEXNET_PORT / CHEXNET_HOST / CHEXNET_CHECKPOINT variable).
PORT ?=
HOST ?=
CHECKPOINT ?=

.PHONY: install install-serve serve test lint format clean demo-model fuzz schemathesis bench bench-quick attack bench-training-input screenshots \
	readme-examples container-test rolling-test bench-training bench-batch-scoring

define make_venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PINS)
endef

$(SERVE_STAMP): pyproject.toml Makefile
	$(make_venv)
	$(BIN)/python -m pip install --quiet -e .
	touch $(SERVE_STAMP)

$(STAMP): pyproject.toml Makefile
	$(make_venv)
	$(BIN)/python -m pip install --quiet -e ".[train,dev]"
	touch $(STAMP) $(SERVE_STAMP)

install: $(STAMP)

install-serve: $(SERVE_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/chexnet serve $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST)) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT))

# Regenerate the README's marked example blocks from a real run of the demo model (docs/examples.py); the test
# tests/e2e/test_readme_examples.py fails when they differ.
readme-examples: $(STAMP)
	$(BIN)/python docs/examples.py --write

lint: $(STAMP)
	$(BIN)/ruff check models app training tests benchmarks chexnet_cli.py
	$(BIN)/ruff format --check models app training tests benchmarks chexnet_cli.py
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# The decoder's long fuzz run (thousands of random and mutated PNG/JPEG/DICOM files); make test runs a short one.
fuzz: $(STAMP)
	CHEXNET_FUZZ=long $(BIN)/python -m pytest -q -p no:cacheprovider tests/models/imaging/test_decoder_fuzz.py

# The API against its own OpenAPI document for longer: schemathesis' default checks, 200 examples per operation,
# against a real server once without and once with an API key; make test runs 8 per operation.
schemathesis: $(STAMP)
	CHEXNET_SCHEMATHESIS_EXAMPLES=200 $(BIN)/python -m pytest -q -p no:cacheprovider tests/app/test_schemathesis.py

# The README's screenshots, docs/upload-page.png and docs/docs-page.png: headless Chromium (apt-get install chromium
# chromium-driver) on the demo model, after scoring the bundled sample X-ray.
screenshots: $(STAMP)
	$(BIN)/python -m tests.e2e.screenshots --out docs

format: $(STAMP)
	$(BIN)/ruff format models app training tests benchmarks chexnet_cli.py
	$(BIN)/ruff check --fix models app training tests benchmarks chexnet_cli.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Rebuild the bundled demo model exactly as shipped (needs ../shared/data; about 15 minutes on 2 CPU cores):
# train, add the plain-words note, then choose its operating points on its own validation split.
demo-model: $(STAMP)
	$(BIN)/chexnet train --images ../shared/data/nih-sample/images \
	  --labels ../shared/data/nih-sample/Data_Entry_sample.csv --out runs/demo-a --weights none \
	  --image-size 128 --epochs 15 --batch-size 32 --scheduler cosine --workers 1 --seed 0 --lr 1e-3
	$(BIN)/python -m training.bundle runs/demo-a/best.pt runs/demo-a/bundled.pt --recipe-selection \
	  "best validation mean AUROC of three CPU runs on the same split (seed 0): 128 px, lr 1e-3, cosine, 15 epochs: 0.647 (chosen, epoch 11); the same with --pos-weight: 0.636; 224 px, lr 1e-3, cosine, 12 epochs: 0.632"
	$(BIN)/chexnet calibrate --checkpoint runs/demo-a/bundled.pt --images ../shared/data/nih-sample/images \
	  --labels ../shared/data/nih-sample/Data_Entry_sample.csv --split-list runs/demo-a/val_list.txt \
	  --out models/bundled/chexnet-demo.pt --device cpu --data-description \
	  "NIH ChestX-ray14 sample, validation split of the demo run: 100 images of 100 patients (split by patient, seed 0, validation fraction 0.2)"

# Our service against a seed-style reference on this machine (at most about 10 minutes on 2 CPU cores);
# writes benchmarks/results/bench-<date>.json and benchmarks/results/latest.md. OMP_WAIT_POLICY=PASSIVE for
# every process: on a CPU shared with other work, libgomp's spin-waiting makes a forward on the main thread
# 5-50x slower (see benchmarks/README.md); passive waiting measures the pipelines, not the neighbours.
BENCH_ENV ?= OMP_WAIT_POLICY=PASSIVE
bench: $(STAMP)
	$(BENCH_ENV) $(BIN)/python -m benchmarks.run_bench --out benchmarks/results

# The same suite with tiny counts (under a minute), into runs/bench-quick: a smoke test, not a measurement.
bench-quick: $(STAMP)
	$(BENCH_ENV) $(BIN)/python -m benchmarks.run_bench --quick --out runs/bench-quick

# The training DataLoader's images/s at 224 px (0/1/2 workers, with and without --image-cache) against DenseNet-121
# forward+backward on random tensors, in one run (about 3 minutes on 2 CPU cores; needs ../shared/data, or pass
# IMAGES="--images DIR"); writes benchmarks/results/training-input-<date>.json.
bench-training-input: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m benchmarks.training_input $(IMAGES)

# Training images/s for each recipe option (docs/recipe.md): the real training step at 224 px, batch 8, CPU, on
# synthetic images (about 3-5 minutes on 2 CPU cores); writes benchmarks/results/training-recipe-<date>.json.
bench-training: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m benchmarks.training_recipe

# Batch scoring files/s: 1 process, 2 shards, Ray on 2 local nodes; decode vs model (docs/scale-scoring.md)
bench-batch-scoring: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m benchmarks.batch_scoring

# The hostile load test with its figures: 32 clients mixing good, bad, huge and slow uploads against the demo
# model under small limits; prints statuses per kind, latencies, and peak memory against the documented bound.
attack: $(STAMP)
	$(BIN)/python -m benchmarks.attack --clients 32 --rounds 9

# The deployment proven (docs/deploy.md): the image built from the Dockerfile (on a stand-in base from Debian's
# packages when PYTHON_IMAGE is not given), run read-only on another port, parity with a local serve, a mounted
# checkpoint, docker stop draining Grad-CAM requests, compose up/down of the CPU setup. Starts dockerd (root) when
# none answers; skips, saying why, where it cannot. First build: minutes and ~6 GB; later ones reuse the layers.
# Figures: runs/container-test/figures.json.
container-test: $(STAMP)
	-deploy/docker-engine.sh
	RUN_DEPLOY_TESTS=container $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests/deployment/test_container.py
	@cat runs/container-test/figures.json 2> /dev/null || true

# Three `chexnet serve` replicas behind nginx (apt-get install nginx-light), restarted one at a time under load:
# no request may fail (a few minutes on 2 CPU cores).
rolling-test: $(STAMP)
	RUN_DEPLOY_TESTS=rolling $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests/deployment/test_rolling_restart.py
