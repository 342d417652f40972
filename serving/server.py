"""Run the service under uvicorn: what ``recsys serve`` and ``recsys demo`` call.

Settings travel to the workers as ``RECSYS_*`` environment variables (each worker is a fresh
process that builds the app with ``serving.app:create_app``), and are validated here first so
that a bad value stops the command with a message instead of every worker failing. With more
than one worker, Prometheus multiprocess mode gets a fresh directory for this run.

Connections are served by :class:`serving.protocol.GuardedHttpToolsProtocol` (uvicorn's
httptools protocol with a header timeout, bounded headers and JSON errors), and idle kept-alive
connections are closed after ``RECSYS_KEEP_ALIVE_SECONDS``. With ``RECSYS_SSL_CERTFILE`` and
``RECSYS_SSL_KEYFILE`` they are HTTPS: uvicorn wraps the listening socket in TLS, under the
same protocol.
"""

from __future__ import annotations

import copy
import os
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError
from uvicorn.config import LOGGING_CONFIG

from features.errors import ConfigError
from serving.settings import Settings

__all__ = ["APP_FACTORY", "HTTP_PROTOCOL", "check_settings", "run_server", "tls_options"]

APP_FACTORY = "serving.app:create_app"
#: uvicorn imports the protocol class by name in each worker.
HTTP_PROTOCOL = "serving.protocol:GuardedHttpToolsProtocol"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _log_config() -> dict:
    """uvicorn's logging, with the service's own loggers (reloads, refusals) on its handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["serving"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def check_settings(environment: Mapping[str, str]) -> Settings:
    """The settings the workers will read, or a ``ConfigError`` naming what is wrong."""
    os.environ.update(environment)
    try:
        return Settings()
    except SettingsError as error:  # a JSON variable that does not parse
        raise ConfigError(f"invalid service settings: {error}") from None
    except ValidationError as error:
        problems = "; ".join(_problem(problem) for problem in error.errors())
        raise ConfigError(f"invalid service settings: {problems}") from None


def _problem(problem: Mapping) -> str:
    """``RECSYS_API_KEYS.k.0: Input should be ...`` (the variable, then the path inside it)."""
    location = [str(part) for part in problem["loc"]]
    if not location:
        return str(problem["msg"])
    return f"RECSYS_{location[0].upper()}{''.join('.' + part for part in location[1:])}: " + str(
        problem["msg"]
    )


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options of ``settings`` (none: plain HTTP), once the certificate and key
    are known to load together here: uvicorn loads them in every worker, where a wrong file
    would fail each worker at its start instead of stopping the command with one message."""
    if settings.ssl_certfile is None or settings.ssl_keyfile is None:
        return {}
    files = {"--ssl-certfile": settings.ssl_certfile, "--ssl-keyfile": settings.ssl_keyfile}
    for option, path in files.items():
        try:
            with Path(path).open("rb"):
                pass
        except OSError as error:
            raise ConfigError(
                f"{option} / RECSYS_{option[2:].replace('-', '_').upper()} {path}: "
                f"{error.strerror or error}; give a readable PEM file"
            ) from None
    secret = settings.ssl_keyfile_password
    password = secret.get_secret_value() if secret is not None else None
    try:
        # A callback even without a password: OpenSSL would otherwise prompt on the terminal.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            files["--ssl-certfile"], files["--ssl-keyfile"], password=lambda: password or ""
        )
    except ssl.SSLError as error:
        raise ConfigError(
            f"--ssl-certfile {files['--ssl-certfile']} and --ssl-keyfile {files['--ssl-keyfile']} "
            f"do not load together ({error.reason or error}): both must be PEM, the key the "
            "certificate's own, and an encrypted key needs RECSYS_SSL_KEYFILE_PASSWORD"
        ) from None
    return {
        "ssl_certfile": str(Path(files["--ssl-certfile"]).absolute()),
        "ssl_keyfile": str(Path(files["--ssl-keyfile"]).absolute()),
        "ssl_keyfile_password": password,
    }


def run_server(
    *,
    host: str,
    port: int,
    workers: int,
    environment: Mapping[str, str],
    access_log: bool = False,
) -> None:
    """Serve until interrupted (Ctrl-C); ``environment`` holds ``RECSYS_*`` settings."""
    settings = check_settings(environment)
    tls = tls_options(settings)
    metrics_dir = None
    if workers > 1 and _MULTIPROC_ENV not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="recsys-metrics-")
        os.environ[_MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http=HTTP_PROTOCOL,
            access_log=access_log,
            log_config=_log_config(),
            timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
            timeout_graceful_shutdown=10,
            **tls,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            del os.environ[_MULTIPROC_ENV]
