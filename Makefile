# Set-up on a fresh machine is two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
QA     := $(VENV)/bin/qa
STAMP  := $(VENV)/.installed
INDEX  ?= index
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install index bench load eval clean browser screenshot

run: index
	$(QA) --index-dir $(INDEX) serve

test: install browser
	$(PY) -m pytest

install: $(STAMP)

# The CPU build of torch goes in first (pip takes it from a local wheel where one exists),
# so the project's `torch` requirement is already met and no CUDA wheels are pulled.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,scale]"
	touch $(STAMP)

# Chromium from Debian for the browser tests (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The README's picture, taken by the browser test's own code.
screenshot: install browser
	QA_SCREENSHOT=docs/screenshot.png QA_STORY_SCREENSHOT=docs/stories-and-dates.png \
		$(PY) -m pytest -q tests/test_browser.py -k "screenshot or date_chip"

# Builds the index from seeds/ when it is missing, changed, or made with another model/chunker.
index: install
	$(QA) --index-dir $(INDEX) index --rebuild-if-stale seeds/

eval: install
	$(QA) eval squad ../shared/data/squad-v1.1-dev-half-a.json --method all --off-topic tests/data/off_topic.json --json docs/eval/squad-half-a.json

bench: install
	$(PY) -m tests.bench

# 20 concurrent users x 25 questions against `qa serve` on loopback (docs/reliability.md).
load: install
	$(PY) -m tests.load

clean:
	rm -rf $(VENV) $(INDEX) .pytest_cache
