# Two commands do all the set-up on a fresh machine:
#   make demo   codes a photo with the shipped model at three qualities and JPEG
#               at the same sizes: a table and a picture (build/demo/)
#   make test   runs the fast test suite (make test-all adds the slow tests)
# make demo-train trains a tiny model for a few hundred steps and exports it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_STEPS ?= 300
DEMO_PHOTO = $(shell $(PY) -c "import tflic.data as d; print(d.samples_holdout())" 2>/dev/null)
DEMO_EXPORT = build/export/hyperprior_tiny/1

.PHONY: install demo demo-train test test-all clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "tflic needs Python 3.11 (TensorFlow 2.14); run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,codecs]"
	touch $@

demo: install
	$(PY) bin/demo --output=build/demo/comparison.png

demo-train: install
	$(PY) bin/train --flagfile=configs/hyperprior_tiny.cfg --steps=$(DEMO_STEPS)
	@mkdir -p build/demo
	$(PY) bin/compress --model=$(DEMO_EXPORT) -v --overwrite $(DEMO_PHOTO) build/demo/photo.tfl
	$(PY) bin/decompress --model=$(DEMO_EXPORT) -v --overwrite build/demo/photo.tfl build/demo/photo.png
	@echo
	@echo "original:      $(DEMO_PHOTO)"
	@echo "bitstream:     build/demo/photo.tfl"
	@echo "decoded:       build/demo/photo.png"
	@echo "SavedModel:    $(DEMO_EXPORT)"
	@echo "training run:  build/runs/hyperprior_tiny (tensorboard --logdir build/runs)"

# Both cores: pytest-xdist workers share the trained fixtures (tests/conftest.py).
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

test-all: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15 -m ""

clean:
	rm -rf build
