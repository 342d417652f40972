"""Service settings, read from ``RECSYS_*`` environment variables.

Everything an operator can change lives here, typed and validated once at start-up, so that a
typo in a variable is a clear error before the first request rather than a surprise under load.
Routes read settings through :func:`get_settings`, a cached dependency that tests override.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.errors import ConfigError
from features.pseudonyms import MemberPseudonyms

__all__ = [
    "DEFAULT_MODEL_URI",
    "Role",
    "Settings",
    "VariantConfig",
    "get_settings",
]

#: The registry alias serving follows when a tracking URI is set and no model artifact is named.
DEFAULT_MODEL_URI = "models:/member-recsys@champion"

#: The variant name of a single-artifact deployment (no A/B test).
DEFAULT_VARIANT = "default"


class Role(StrEnum):
    """What an API key may do. ``admin`` includes the other two."""

    READ = "read"
    EVENTS = "events"
    ADMIN = "admin"


class VariantConfig(BaseModel):
    """One arm of an A/B test: where its model artifact comes from and its share of members."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A model artifact directory, or a registry URI (``models:/<name>@<alias>`` or ``/<version>``).
    source: str = Field(min_length=1)
    #: Relative share of members; the shares are normalised over all variants.
    weight: float = Field(default=1.0, gt=0)


class Settings(BaseSettings):
    """Every setting of the service; see docs/operations.md for each variable."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore", frozen=True)

    #: A model artifact directory (simplest deployment: one variant called ``default``).
    artifact: Path | None = None
    #: A registry URI instead of a directory; defaults to the champion when a tracking URI
    #: is set and neither this nor ``artifact`` nor ``variants`` is.
    model_uri: str | None = None
    #: A/B test arms, e.g. ``{"champion": {"source": "models:/member-recsys@champion",
    #: "weight": 0.9}, "challenger": {"source": "models:/member-recsys@challenger",
    #: "weight": 0.1}}``.
    variants: dict[str, VariantConfig] = Field(default_factory=dict)
    #: Salt of the member hash that assigns variants: change it to reshuffle an experiment.
    ab_salt: str = ""
    #: MLflow tracking/registry URI (else ``MLFLOW_TRACKING_URI``).
    tracking_uri: str | None = None
    #: Where model artifacts downloaded from the registry are kept (one directory per version,
    #: shared by every worker so that they map the same files).
    artifact_cache: Path = Path("data/serving/artifacts")
    #: Seconds between checks of each variant's source (a moved alias, a rewritten model
    #: artifact directory); 0 turns polling off.
    poll_seconds: float = Field(default=30.0, ge=0)
    #: Verify every file's checksum before a model artifact is swapped in.
    verify_checksums: bool = True
    #: Seconds between checks for a reload that another worker was asked for
    #: (``POST /v1/admin/reload`` reaches one worker; every other worker and replica sharing
    #: the event store follows within this); 0 turns following off.
    reload_follow_seconds: float = Field(default=1.0, ge=0)

    #: SQLAlchemy URL of the event store: SQLite (WAL) by default, PostgreSQL by URL
    #: (``postgresql+psycopg://user:pass@host/db``).
    events_url: str = "sqlite:///data/serving/events.db"
    #: Served lists (impressions) are flushed to the store this often, and sooner when
    #: ``impression_batch`` are waiting.
    impression_flush_seconds: float = Field(default=1.0, gt=0)
    impression_batch: int = Field(default=1000, ge=1)
    #: Impressions held in memory at most while the store is unreachable; older ones are
    #: dropped (and counted) beyond it.
    impression_buffer_max: int = Field(default=100_000, ge=1)

    #: API keys and their roles, e.g. ``{"k1": ["read"], "k2": ["events"], "k3": ["admin"]}``.
    api_keys: dict[str, list[Role]] = Field(default_factory=dict)
    #: Whether read routes (recommendations, reports, models) need a key too.
    require_read_key: bool = False
    #: Answer plainly valid storefront requests (GET member recommendations) in plain ASGI,
    #: past FastAPI's routing (``serving.fast_lane``); the answers are the same.
    fast_lane: bool = True

    #: Largest request body accepted, in bytes; a larger one is refused with a 413 before it
    #: is read (1,000 events, the most one POST /v1/events takes, with 128-character ids are
    #: 657 KB of JSON).
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    #: Seconds a client has to send a whole request body once its headers are in (408 after).
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Seconds a client has to send a request's headers, from the moment its connection opens
    #: (or it starts the next request on a kept-alive one); then the connection is closed.
    #: Connections that send nothing at all are closed after this too.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Seconds an idle kept-alive connection is held open after a response.
    keep_alive_seconds: float = Field(default=5.0, gt=0)
    #: Most bytes of a request's URL and of its headers together: a longer URL is answered
    #: 414, longer headers 431 (both JSON). At most 65,535: the HTTP parser cannot split
    #: longer URLs.
    max_header_bytes: int = Field(default=32_768, ge=4096, le=65_535)

    #: HTTPS: a PEM certificate (with its chain) and its private key, both or neither (plain
    #: HTTP, e.g. behind a proxy that terminates TLS). Read by ``recsys serve``, which loads
    #: them once before any worker starts, so that a wrong file is one message, not every
    #: worker failing.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    #: The password of an encrypted private key: a variable only, never an option (``ps``
    #: shows a command line to every user of the machine).
    ssl_keyfile_password: SecretStr | None = None

    #: The retailer's key of pseudonymised member ids (``features.pseudonyms``): set, member
    #: ids in request paths and bodies are replaced by their pseudonyms before anything else
    #: sees them, and only artifacts trained with the same key are served; unset, only
    #: artifacts of raw ids are. Never logged (a ``SecretStr``).
    member_id_key: SecretStr | None = None

    @field_validator("member_id_key")
    @classmethod
    def _usable_key(cls, key: SecretStr | None) -> SecretStr | None:
        """An empty key is no key; a short one is refused at start-up, not at the first load."""
        if key is None or not key.get_secret_value():
            return None
        try:
            MemberPseudonyms(key.get_secret_value())
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return key

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            given, missing = (
                ("RECSYS_SSL_CERTFILE", "RECSYS_SSL_KEYFILE")
                if self.ssl_keyfile is None
                else ("RECSYS_SSL_KEYFILE", "RECSYS_SSL_CERTFILE")
            )
            raise ValueError(
                f"{given} is set without {missing}: HTTPS needs the certificate and its private "
                "key (recsys serve --ssl-certfile and --ssl-keyfile), or neither for plain HTTP"
            )
        return self

    @model_validator(mode="after")
    def _one_source(self) -> Settings:
        named = [name for name in ("artifact", "model_uri") if getattr(self, name) is not None]
        if self.variants:
            named.append("variants")
        if len(named) > 1:
            raise ValueError(
                f"set only one of RECSYS_ARTIFACT, RECSYS_MODEL_URI and RECSYS_VARIANTS "
                f"(got {', '.join('RECSYS_' + name.upper() for name in named)})"
            )
        return self

    def resolved_tracking_uri(self) -> str | None:
        """The tracking URI set here or in ``MLFLOW_TRACKING_URI``; None when neither is."""
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None

    def member_pseudonyms(self) -> MemberPseudonyms | None:
        """The pseudonyms of ``member_id_key``; None when member ids are served raw."""
        key = self.member_id_key
        return MemberPseudonyms(key.get_secret_value()) if key is not None else None

    def variant_configs(self) -> dict[str, VariantConfig]:
        """The arms to serve: the configured variants, else one ``default`` arm from the
        model artifact, the model URI, or the champion alias when a tracking URI is set; empty
        when nothing says where a model artifact is (the service then stays not ready)."""
        if self.variants:
            return dict(self.variants)
        source = self.artifact or self.model_uri
        if source is None and self.resolved_tracking_uri():
            source = DEFAULT_MODEL_URI
        return {} if source is None else {DEFAULT_VARIANT: VariantConfig(source=str(source))}


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
