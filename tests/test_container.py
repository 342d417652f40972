"""The container image and the compose stack, checked without a Docker engine.

No Docker engine runs in CI, so the suite runs what the image runs, read from the Dockerfile
itself: the build context that .dockerignore lets through, the build stage's COPY lines and its
``uv sync`` commands (into a venv of their own, never the project's .venv), then the runtime
stage's ENTRYPOINT + CMD with its ENV, and its HEALTHCHECK, verbatim. The image's absolute paths
(/app, /data, /artifact) live under a temporary directory that stands for the container's root;
the tiny trained model artifact is "mounted" at its /artifact. Change the Dockerfile and these
tests run the new commands, so the image cannot drift from what is tested.

Two differences, both deliberate: the venv is installed without compiling bytecode (the image
compiles it at build time; here it would cost ~20 s of CPU and change nothing the tests see), and
the server binds what the image binds (0.0.0.0) on a free port of this machine.

compose.yaml is checked against the code: the API's variables are settings of
serving/settings.py, its command parses as ``recsys serve`` options, MLflow's command and
variables are ``mlflow server``'s, and its image is the MLflow version in uv.lock.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import polars as pl
import pytest
import yaml

from tests.container_files import (
    ContainerPaths,
    Dockerfile,
    build_context,
    interpolate,
    known_settings,
    parse_duration,
    parse_options,
)
from tests.serving_helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
#: The container paths tests/container_files.ContainerPaths maps: the image's own.
IMAGE_TOPS = {"/app", "/data", "/artifact"}
READY_TIMEOUT_SECONDS = 120
#: `docker stop` sends SIGTERM, then SIGKILL after this many seconds.
DOCKER_STOP_GRACE_SECONDS = 10
#: Variables the build stage sets for Docker's sake only: a copy out of the cache mount (a
#: hardlink is right here) and bytecode, which ``--no-compile-bytecode`` turns off (the module
#: docstring says why; pyproject.toml's compile-bytecode outranks the variable).
BUILD_ONLY_ENV = {"UV_LINK_MODE", "UV_COMPILE_BYTECODE"}


def _uv() -> list[str]:
    """uv: the one running this suite (``uv run`` sets UV), else the one on PATH or pip's."""
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]  # what the Makefile installs


def _hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    return str(found) if found.exists() else shutil.which("hadolint") or "hadolint"


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE)


@dataclass
class Image:
    """The image's filesystem, built outside Docker under ``root``."""

    root: Path
    paths: ContainerPaths
    env: dict[str, str]  # the runtime stage's ENV, mapped to host paths
    workdir: Path
    venv: Path


@pytest.fixture(scope="module")
def image(dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """Run the build stage: its context, COPY lines and ``uv sync`` commands, in order."""
    root = tmp_path_factory.mktemp("image")
    paths = ContainerPaths(root, IMAGE_TOPS)
    context = build_context(ROOT, ROOT / ".dockerignore", root / ".context")
    build = dockerfile.stage("build")
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    for key, value in build.env(dict(os.environ)).items():
        environment[key] = paths.host(value)
    for key in BUILD_ONLY_ENV:
        environment.pop(key, None)
    workdir, synced = Path("/"), 0
    for step in build.instructions:
        if step.keyword == "WORKDIR":
            workdir = paths.path(step.rest)
            workdir.mkdir(parents=True, exist_ok=True)
        elif step.keyword == "COPY":
            flags, sources, destination = step.copy_parts()
            if "from" in flags:  # uv's own image: this machine's uv stands for it
                continue
            _copy(context, sources, destination, workdir, paths)
        elif step.keyword == "RUN":
            mounts, words = step.run_parts()
            if words[0] == "apt-get":  # system packages: this machine has them
                continue
            assert words[:2] == ["uv", "sync"], f"Dockerfile:{step.line}: the suite cannot run it"
            for mount in mounts:
                if mount.get("type") == "bind":
                    shutil.copy2(context / mount["source"], workdir / mount["target"])
            result = subprocess.run(
                [*_uv(), *words[1:], "--no-compile-bytecode"], cwd=workdir, env=environment,
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert result.returncode == 0, f"Dockerfile:{step.line}: {result.stderr[-3000:]}"
            synced += 1
    assert synced, "the build stage runs no `uv sync`"
    runtime = dockerfile.stage("runtime")
    copies = [step.copy_parts() for step in runtime.all("COPY")]
    venv_copies = [(sources, target) for flags, sources, target in copies if flags.get("from")]
    assert venv_copies == [(["/app/.venv"], "/app/.venv")], (
        "the runtime stage must copy the build stage's venv to the same path: its scripts' "
        "shebangs name that path"
    )
    env = {key: paths.host(value) for key, value in runtime.env(dict(os.environ)).items()}
    for volume in runtime.last("VOLUME").exec_form():
        paths.path(volume).mkdir(parents=True, exist_ok=True)
    home = root / "home" / "recsys"  # the user's home (useradd --create-home)
    home.mkdir(parents=True)
    workdir = paths.path(runtime.last("WORKDIR").rest)
    workdir.mkdir(parents=True, exist_ok=True)
    return Image(root, paths, {"HOME": str(home), "LANG": "C.UTF-8", **env}, workdir,
                 paths.path(environment["UV_PROJECT_ENVIRONMENT"]))  # fmt: skip


def _copy(
    context: Path, sources: list[str], destination: str, workdir: Path, paths: ContainerPaths
) -> None:
    """COPY from the build context: a directory's contents into the destination, files into
    it when it ends with / (or there are several)."""
    target = paths.path(destination) if destination.startswith("/") else workdir / destination
    for source in sources:
        assert not any(char in source for char in "*?["), f"COPY {source}: no globs, please"
        found = context / source
        assert found.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
        if found.is_dir():
            shutil.copytree(found, target, dirs_exist_ok=True)
        elif destination.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, target / found.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, target)


def _healthcheck(dockerfile: Dockerfile, image: Image, port: int) -> subprocess.CompletedProcess:
    """The HEALTHCHECK command verbatim, in the image's environment, with its timeout."""
    step = dockerfile.stage("runtime").last("HEALTHCHECK")
    timeout = parse_duration(step.healthcheck()[0].get("timeout", "30s"))
    argv = [image.paths.host(word) for word in step.exec_form()]
    return subprocess.run(
        argv, env={**image.env, "PORT": str(port)}, cwd=image.workdir,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@dataclass
class Container:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def container(
    dockerfile: Dockerfile, image: Image, tiny_trained: tuple[Path, Path]
) -> Iterator[Container]:
    """ENTRYPOINT + CMD as the image runs them, with the tiny artifact mounted at /artifact."""
    shutil.copytree(tiny_trained[1], image.paths.path("/artifact"), dirs_exist_ok=True)
    runtime = dockerfile.stage("runtime")
    argv = [*runtime.last("ENTRYPOINT").exec_form(), *runtime.last("CMD").exec_form()]
    port = free_port()
    log = image.root / "container.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [image.paths.host(word) for word in argv], env={**image.env, "PORT": str(port)},
            cwd=image.workdir, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    running = Container(process, port, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, f"exited {process.returncode}:\n{running.logs()}"
            assert time.monotonic() < deadline, f"never ready:\n{running.logs()}"
            try:
                if httpx.get(f"{running.url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_hadolint_passes_and_silences_only_the_apt_pins() -> None:
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The one rule silenced (with its reason in the Dockerfile): unpinned apt packages.
    every = subprocess.run(
        [_hadolint(), "--disable-ignore-pragma", "--no-color", str(DOCKERFILE)],
        capture_output=True, text=True,
    )  # fmt: skip
    rules = {line.split()[1] for line in every.stdout.splitlines() if line.strip()}
    assert rules <= {"DL3008"}, every.stdout


def test_dockerfile_is_pinned_non_root_and_ships_every_package(dockerfile: Dockerfile) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build, runtime = dockerfile.stage("build"), dockerfile.stage("runtime")
    uv_image = dockerfile.stages[0].image
    assert uv_image.startswith("ghcr.io/astral-sh/uv:") and uv_image.split(":")[1][0].isdigit()
    for stage in (build, runtime):  # the same interpreter path in both: the venv links to it
        assert stage.image == "python:3.11-slim-bookworm", stage.image
    assert project["project"]["requires-python"].startswith(">=3.11,<3.12")
    user = runtime.last("USER").rest.split(":")[0]
    assert user not in {"root", "0"}, "the service must not run as root"
    syncs = [step.run_parts()[1] for step in build.all("RUN") if "uv sync" in step.rest]
    assert syncs and all({"--frozen", "--no-dev"} <= set(words) for words in syncs)
    assert "--no-editable" in syncs[-1], "the runtime stage has no source tree to point at"
    copied = {step.copy_parts()[1][0] for step in build.all("COPY") if step.copy_parts()[0] == {}}
    packages = set(project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert packages <= copied, f"packages the image does not copy: {packages - copied}"
    known = known_settings()
    for key in runtime.env({}):
        assert not key.startswith("RECSYS_") or key in known, f"{key} is not a setting"


def test_the_default_target_is_the_api_and_the_trainer_adds_only_a_java_runtime(
    dockerfile: Dockerfile,
) -> None:
    """`docker build .` gives the API image; `--target trainer` the same venv with a JRE, for
    `recsys train --engine spark` (pyspark starts its JVM from it)."""
    last, trainer = dockerfile.stages[-1], dockerfile.stage("trainer")
    assert (last.image, last.instructions) == ("runtime", []), "the last stage must be the API"
    assert trainer.image == "runtime"
    installs = " ".join(step.rest for step in trainer.all("RUN"))
    assert re.search(r"apt-get install .*openjdk-\d+-jre-headless", installs), installs
    assert trainer.last("USER").rest.split(":")[0] not in {"root", "0"}, "training runs as root"
    assert json.loads(trainer.last("ENTRYPOINT").rest) == ["recsys"]
    assert json.loads(trainer.last("CMD").rest)[0] == "train"


def test_image_installs_the_project_from_the_lock_as_a_wheel(image: Image) -> None:
    site = image.venv / "lib" / "python3.11" / "site-packages"
    assert (image.venv / "bin" / "recsys").exists()
    assert (site / "serving" / "app.py").exists(), "the project is not installed as a wheel"
    assert not list(site.glob("*member_recsys*.pth")), "installed editable, not as a wheel"
    dev_only = [name for name in ("pytest", "ruff", "hypothesis") if (site / name).exists()]
    assert not dev_only, f"dev dependencies in the image: {dev_only}"


def test_image_ships_every_file_of_the_packages(image: Image) -> None:
    """Data files too (the dashboard's pages, Chart.js): a wheel that dropped them would serve
    a blank `/` from the image while the editable install here serves it."""
    site = image.venv / "lib" / "python3.11" / "site-packages"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    missing = [
        path.relative_to(ROOT)
        for package in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
        and not (site / path.relative_to(ROOT)).exists()
    ]  # fmt: skip
    assert not missing, f"not in the image: {missing[:10]}"
    assert (site / "serving" / "dashboard" / "static" / "index.html").exists()


def test_healthcheck_fails_when_nothing_answers(dockerfile: Dockerfile, image: Image) -> None:
    assert _healthcheck(dockerfile, image, free_port()).returncode != 0


def test_container_serves_the_mounted_artifact_and_is_healthy(
    dockerfile: Dockerfile, image: Image, container: Container, tiny_trained: tuple[Path, Path]
) -> None:
    checked = _healthcheck(dockerfile, image, container.port)
    assert checked.returncode == 0, checked.stderr + container.logs()
    ready = httpx.get(f"{container.url}/readyz", timeout=10).json()
    assert "default" in ready["versions"], ready
    member = pl.read_parquet(tiny_trained[0] / "interactions.parquet")["member_id"][0]
    answer = httpx.get(f"{container.url}/v1/members/{member}/recommendations?n=5", timeout=30)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["items"]) == 5
    for page in ("/", "/docs"):  # the dashboard and the API docs, from the installed wheel
        shown = httpx.get(f"{container.url}{page}", timeout=10)
        assert shown.status_code == 200 and "text/html" in shown.headers["content-type"], page
    events = urlsplit(image.env["RECSYS_EVENTS_URL"]).path.removeprefix("/")
    assert Path(events).exists() and image.paths.path("/data") in Path(events).parents


def test_container_stops_within_docker_stops_grace(container: Container) -> None:
    container.process.send_signal(signal.SIGTERM)
    code = container.process.wait(timeout=DOCKER_STOP_GRACE_SECONDS)
    # uvicorn shuts down, then re-raises the signal: exit 143 to Docker, a clean stop.
    assert code in (0, -signal.SIGTERM), container.logs()
    assert "Application shutdown complete" in container.logs()


# ---- compose.yaml ----


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_names_the_stack_with_health_gated_dependencies(compose: dict) -> None:
    services = compose["services"]
    assert {"api", "proxy", "mlflow", "mlflow-db", "events-db"} <= set(services)
    assert services["api"]["build"] == "."
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            # The proxy starts beside the replicas, which are unhealthy until a champion exists.
            started = (name, dependency) == ("proxy", "api")
            wanted = "service_started" if started else "service_healthy"
            assert condition == {"condition": wanted}, (name, dependency)
            assert dependency == "api" or "healthcheck" in services[dependency], dependency
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], f"{name}: {volume} is not named"


def test_compose_runs_api_replicas_that_only_the_proxy_publishes(compose: dict) -> None:
    services = compose["services"]
    api, proxy = services["api"], services["proxy"]
    assert api["deploy"]["replicas"] >= 2
    assert "ports" not in api and "volumes" not in api  # nothing shared, nothing published
    assert proxy["ports"] == ["127.0.0.1:${API_PORT:-8000}:8000"]
    [config] = proxy["configs"]
    assert config["target"] == "/etc/nginx/conf.d/default.conf"
    nginx = (COMPOSE.parent / compose["configs"][config["source"]]["file"]).read_text()
    assert re.search(r"upstream api \{\s*server api:8000;", nginx), "upstream: the api service"
    assert "listen 8000;" in nginx and "proxy_pass http://api;" in nginx
    health = " ".join(proxy["healthcheck"]["test"])
    assert "/proxy-health" in health and "location = /proxy-health" in nginx


def test_compose_api_uses_only_real_settings_and_serve_options(compose: dict) -> None:
    api = compose["services"]["api"]
    unknown = set(api["environment"]) - known_settings()
    assert not unknown, f"not settings of serving/settings.py: {unknown}"
    parse_options("serve", api["command"])
    tracking = urlsplit(api["environment"]["RECSYS_TRACKING_URI"])
    mlflow = compose["services"]["mlflow"]
    assert tracking.hostname == "mlflow" and f"--port={tracking.port}" in mlflow["command"]
    events = urlsplit(interpolate(api["environment"]["RECSYS_EVENTS_URL"]))
    database = compose["services"]["events-db"]["environment"]
    assert events.scheme == "postgresql+psycopg" and events.hostname == "events-db"
    assert (events.username, events.path) == (
        database["POSTGRES_USER"],
        f"/{database['POSTGRES_DB']}",
    )
    assert events.password == interpolate(database["POSTGRES_PASSWORD"])


def test_compose_mlflow_matches_the_locked_client(compose: dict) -> None:
    mlflow = compose["services"]["mlflow"]
    assert mlflow["image"] == f"ghcr.io/mlflow/mlflow:v{importlib.metadata.version('mlflow')}-full"
    assert mlflow["command"][:2] == ["mlflow", "server"]
    envvars = parse_options("server", mlflow["command"][2:])
    assert "--serve-artifacts" in mlflow["command"]
    assert set(mlflow["environment"]) <= envvars, set(mlflow["environment"]) - envvars
    backend = urlsplit(interpolate(mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]))
    database = compose["services"]["mlflow-db"]["environment"]
    assert backend.scheme == "postgresql" and backend.hostname == "mlflow-db"
    assert backend.password == interpolate(database["POSTGRES_PASSWORD"])


def test_compose_commits_no_secret(compose: dict) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if value is None:
                continue
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{name}.{key} is written in the file"
            password = urlsplit(str(value)).password if "://" in str(value) else None
            if password is not None:
                assert password.startswith("${"), f"{name}.{key} has a password written in it"
