# Portrait Relight — set-up, demo, tests, benchmark. A fresh clone needs Python 3.11 and PyPI; `make test` and
# `make eval` also need ../shared beside the checkout (PORTRAIT_RELIGHT_SHARED points elsewhere).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/portrait_relight
export PORTRAIT_RELIGHT_CACHE := $(CACHE)
# Development only (the runtime has no numba): pymatting, the reference of make bench and the tests, compiles
# its numba kernels on first import (~1-2 min); keep them out of the repo and reuse them.
export NUMBA_CACHE_DIR ?= $(CACHE)/numba
export PYTHONUNBUFFERED := 1

.PHONY: demo test bench bench-shot eval eval-set lightstage-sample lightstage-poses lightstage-pack train screenshots models extension venv clean

# 1. Main job: relight the public-domain astronaut portrait (scikit-image) under Blender's bundled forest HDRI.
demo: models
	$(PY) tools/demo.py --out out/demo $(if $(PLATE),--plate $(PLATE))

# 2. All tests (.ci/run calls exactly this): the lint (ruff.toml), then the suite.
test: models $(VENV)/.dev-installed $(VENV)/.train-installed $(VENV)-tflite/.installed $(VENV)-bpy45/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -ra tests

# The whole command on a 1080p plate (start-up, stages, write) against pymatting's closed form alone on it, and
# their ratio (tools/bench.py), then on 1080p, 4K and 8K plates: seconds per megapixel and peak memory
# (tools/bench_scale.py; ~3 min)
bench: models $(VENV)/.dev-installed
	$(PY) tools/bench.py
	$(PY) tools/bench_scale.py

# 24-frame 1080p batch through ./relight (seconds per frame), then a SIGKILL mid-frame and a resume (~8 min)
bench-shot: models $(VENV)/.dev-installed
	$(PY) tools/bench_shot.py $(if $(SOURCE),--source $(SOURCE))

# README images, rendered headless with the extension's own operators (~25 s)
screenshots: models
	$(PY) tools/screenshots.py --out docs/images

# Virtual light stage: the fixed evaluation set (24 cases at 384^2, cached in $(CACHE)/lightstage/; renders only
# missing cases, ~30-35 min the first time on 2 cores); `make eval` renders what is missing, then evaluates the
# product on it (table, report.json, contact sheet).
eval-set: models
	$(PY) tools/lightstage.py --eval-set --cache $(CACHE)

eval: models
	$(PY) tools/evaluate.py $(if $(LIMIT),--limit $(LIMIT)) $(if $(OUT),--out $(OUT))

# A few training-style samples with OLAT: make lightstage-sample N=10 SUBJECT=makehuman
lightstage-sample: models
	$(PY) tools/lightstage.py --out $(CACHE)/lightstage/samples --seed $(or $(SEED),0) --count $(or $(N),4) \
		--size 384 --subject $(or $(SUBJECT),makehuman) --samples 64 --olat 32

# Training poses (ground truth + 32-light OLAT basis at 256^2, ~100 per hour on 2 cores) cached in
# $(CACHE)/lightstage/poses-v2/{train,val}/; renders only the missing ones, so the cache grows: make lightstage-poses N=1000
# (START=K begins at seed index K: new identities on a machine whose earlier poses are gone)
lightstage-poses: models
	$(PY) tools/lightstage.py --poses --count $(or $(N),100) $(if $(START),--start $(START)) --cache $(CACHE)

# Train a net on the cached poses, resumably, then export it: make train NET=geometry MINUTES=90; a new run can
# start from the shipped weights (fine-tuning on new poses): make train NET=albedo INIT=shipped LR=3e-4
train: models $(VENV)/.train-installed
	$(PY) tools/train.py --net $(or $(NET),geometry) --minutes $(or $(MINUTES),60) --cache $(CACHE) \
		$(if $(INIT),--init $(INIT)) $(if $(LR),--lr $(LR))

# Pack rendered cases into training shards (<= 60 MB .npz each, numpy-only reader): make lightstage-pack CASES=DIR OUT=DIR
lightstage-pack: $(VENV)/.installed
	$(PY) tools/lightstage_pack.py --cases $(or $(CASES),$(CACHE)/lightstage/samples) \
		--out $(or $(OUT),$(CACHE)/lightstage/shards)

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	touch $@

# pymatting (with numba and llvmlite) as the reference for the benchmark and the tests, in the main venv; never
# in the extension's zip.
$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt constraints.txt
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

# torch (CPU build, exact pin) for training/ and its tests, in the main venv; never in the extension's zip.
$(VENV)/.train-installed: $(VENV)/.installed requirements-train.txt
	$(PY) -m pip install -q -r requirements-train.txt
	touch $@

# TFLite reference interpreter for the converter tests: ai-edge-litert needs numpy 2, bpy needs numpy < 2,
# so it lives in its own venv and the tests call it by subprocess.
$(VENV)-tflite/.installed: requirements-tflite.txt
	$(PYTHON) -m venv $(VENV)-tflite
	$(VENV)-tflite/bin/python -m pip install -q -r requirements-tflite.txt
	touch $@

# Blender 4.5 LTS as a module for tests/test_blender45.py (the main venv has bpy 5.0.1): the runtime pins of
# requirements.txt with bpy 4.5, and constraints.txt less its bpy pin.
$(VENV)-bpy45/.installed: requirements-bpy45.txt constraints.txt
	$(PYTHON) -m venv $(VENV)-bpy45
	grep -v '^bpy==' constraints.txt > $(VENV)-bpy45/constraints.txt
	$(VENV)-bpy45/bin/python -m pip install -q -r requirements-bpy45.txt -c $(VENV)-bpy45/constraints.txt
	touch $@

# ONNX models converted from the pinned mediapipe wheel (never committed).
models: $(VENV)/.installed
	$(PY) tools/build_models.py --out inference/models

# The installable extension zips (dist/), one per platform with its bundled wheels (tools/extension_platforms.py).
extension: models
	$(PY) tools/build_extension.py

clean:
	rm -rf build dist out
	git clean -fqX inference/models  # the models built from wheels (ignored), not our committed nets
