# syntax=docker/dockerfile:1
# The recommendation API in a container: `recsys serve` on 0.0.0.0:$PORT as a non-root user,
# serving a mounted model artifact (/artifact) or a registry alias. How to build and run it, and
# every setting: docs/containers.md. No Docker engine runs in CI, so tests/test_container.py
# reads this file and runs its install commands, its entry point and its healthcheck outside
# Docker: change them here and the suite runs the new ones.

# uv, pinned to the version that wrote uv.lock.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# ---- build: the locked dependencies, then the project as a wheel, into /app/.venv ----
FROM python:3.11-slim-bookworm AS build

# rectools-lightfm is published as source only: it is compiled here (C with OpenMP).
# Versions are not pinned: the base image's tag fixes the Debian release, and the archive drops
# superseded versions, so a pin would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /usr/local/bin/uv
# The interpreter is the image's own (/usr/local/bin/python3.11, the same path in the runtime
# stage, so the venv's links stay valid); copy, not hardlink, out of the cache mount.
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app

# The dependencies first, from the lock alone: this layer is rebuilt only when uv.lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project

# Then the project, installed as a wheel (not editable): the runtime stage has no source tree.
COPY pyproject.toml uv.lock README.md ./
COPY features ./features
COPY training ./training
COPY serving ./serving
COPY cli ./cli
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# ---- runtime: the venv on a slim image, no compiler, no uv ----
FROM python:3.11-slim-bookworm AS runtime

# libgomp1: the OpenMP runtime of LightGBM, implicit and the compiled LightFM (not in slim).
# /data holds what the service writes (SQLite events, registry downloads), /artifact is where a
# model artifact is mounted; both belong to the service's user, uid 10001.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 recsys \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin recsys \
    && install -d -o 10001 -g 10001 /data /artifact

# Owned by root: the service's code is read-only to the service.
COPY --from=build /app/.venv /app/.venv

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PORT=8000 \
    RECSYS_EVENTS_URL=sqlite:////data/events.db \
    RECSYS_ARTIFACT_CACHE=/data/artifacts

WORKDIR /data
USER 10001:10001
VOLUME ["/data", "/artifact"]
EXPOSE 8000

# Ready, not merely alive: healthy once a model artifact is loaded (/readyz 200); the start
# period covers a registry download. Python, because the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/readyz\", timeout=4)"]

# A shell only to read $PORT; exec hands PID 1 to `recsys serve` (it handles SIGTERM itself).
# The arguments (CMD) say where the model artifact comes from: the mounted directory by
# default, or `--model-uri models:/member-recsys@champion` with RECSYS_TRACKING_URI set.
ENTRYPOINT ["/bin/sh", "-c", "exec recsys serve --host 0.0.0.0 --port \"$PORT\" \"$@\"", "recsys-serve"]
CMD ["--artifact", "/artifact"]

# ---- trainer: the same image with a Java runtime, for `recsys train --engine spark` ----
# pyspark (in the venv) starts its JVM from this JRE: a local master in the container, or the
# driver and the executors of a cluster run from this image (docs/spark.md). Build it with
# `docker build --target trainer`; the API image (the default, last stage) carries no JRE.
FROM runtime AS trainer

USER 0:0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
USER 10001:10001
ENTRYPOINT ["recsys"]
CMD ["train", "--help"]

# ---- the default target: the API image above, unchanged ----
FROM runtime AS api
