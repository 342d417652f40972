# Two commands set up a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
# uv itself, or the copy that pip installs (runnable as a module) on machines that lack it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: demo test lint format uv sync

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv

sync: uv
	@echo "make: uv sync --frozen (the first run downloads and installs the dependencies, about a minute)" >&2
	$(UV) sync --frozen

demo: sync
	$(UV) run recsys demo

# pytest exits 5 when it collects no test: that is a failure, not a pass.
test: sync
	@$(UV) run pytest; status=$$?; \
		if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
		exit $$status

# lint-imports: the layers of DESIGN section 2 ([tool.importlinter] in pyproject.toml).
lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports --no-cache --no-logo
	$(UV) run nbstripout --verify notebooks/*.ipynb
	$(UV) run hadolint Dockerfile

format: sync
	$(UV) run ruff format .
	$(UV) run ruff check --fix .
