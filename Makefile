# facekit: `make demo`, `make test` and `make lab` each create .venv/ and install requirements.txt first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lab bench gifs clean-venv

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/python -m facekit train dcgan --resolution 32 --steps 2400 --batch-size 64 --filters 32 --run runs/demo --snapshot-every 100

test: $(STAMP)  # the tests in two processes (pytest-xdist, a file to each), then the lessons two at a time
	FACEKIT_PROFILE=smoke $(BIN)/python -m pytest -q -n 2 --dist loadfile tests
	$(MAKE) --no-print-directory --jobs=2 --keep-going --output-sync=target lessons

# One target per lesson, executed by nbval in the smoke profile (`make test` runs two at a time and prints a lesson's
# output when it ends).
LESSONS := $(patsubst notebooks/%.ipynb,lesson-%,$(sort $(wildcard notebooks/*.ipynb)))
.PHONY: lessons $(LESSONS)
lessons: $(LESSONS)
$(LESSONS): lesson-%: $(STAMP)
	FACEKIT_PROFILE=smoke $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-cell-timeout=900 \
		notebooks/$*.ipynb
# Lessons that reuse earlier lessons' runs start after them (else two kernels would train into one run folder).
lesson-04_compare_baselines: lesson-02_vae lesson-03_dcgan
lesson-08_latent_space: lesson-02_vae lesson-07_conditional

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_gan_family.py
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_draft.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_pca.py

gifs: $(STAMP)  # every lesson in the profile FACEKIT_PROFILE chooses; its GIFs and last grids in gifs/LESSON/
	$(BIN)/python benchmarks/lesson_profiles.py --gifs gifs

clean-venv:
	rm -rf $(VENV)
