"""Tier rules: the loyalty program's ladder, a spend threshold per tier over a trailing window.

A program says "spend 100 in a year to be gold". The rules are configuration, not code: a JSON or
TOML file (``recsys train --tier-rules FILE``), copied into the model artifact as
:data:`TIER_RULES_FILE` so that serving reads the very rules training applied. A member's
*tier spend* is ``quantity * price`` (:func:`features.baskets.line_value`) of their purchases in
the ``window_days`` ending at the reference time; they earn the highest tier whose ``min_spend``
it reaches, and the next tier up is what "spend X more to reach tier Y" names.

The defaults fit the synthetic store (``recsys generate``, 3,000 members, 150,000 events, seed
42), measured on its last 365 days: 56% of members spent nothing, the 83rd percentile of spend
is 78 and the 96th is 260. Bronze 0, silver 25, gold 100 and platinum 250 then put about 70%,
17%, 9% and 4% of members in the four tiers: a ladder shaped like the generator's declared
tiers (55/28/13/4%) with platinum as rare. Real programs set their own.

A file looks like (JSON: the same fields)::

    window_days = 365
    tiers = [
      {name = "bronze", min_spend = 0},
      {name = "silver", min_spend = 25},
      {name = "gold", min_spend = 100},
      {name = "platinum", min_spend = 250},
    ]
"""

from __future__ import annotations

import json
import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.errors import ConfigError

__all__ = ["TIER_RULES_FILE", "Tier", "TierRules", "load_tier_rules", "write_tier_rules"]

#: The model artifact's copy of the rules training applied (JSON).
TIER_RULES_FILE: Final = "tier_rules.json"


class Tier(BaseModel):
    """One rung: members whose tier spend is at least ``min_spend`` reach ``name``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    min_spend: float = Field(ge=0.0)


_DEFAULT_TIERS: Final = (
    Tier(name="bronze", min_spend=0.0),
    Tier(name="silver", min_spend=25.0),
    Tier(name="gold", min_spend=100.0),
    Tier(name="platinum", min_spend=250.0),
)


class TierRules(BaseModel):
    """The ladder, lowest tier first, and the trailing window its spend is counted over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: float = Field(default=365.0, gt=0.0)
    tiers: tuple[Tier, ...] = _DEFAULT_TIERS

    @model_validator(mode="after")
    def _ladder_is_well_formed(self) -> TierRules:
        # Raised as ValueError so that pydantic reports it with the field it concerns.
        if not self.tiers or self.tiers[0].min_spend != 0.0:
            raise ValueError("tiers: the first (lowest) tier must have min_spend 0")
        spends = [tier.min_spend for tier in self.tiers]
        if not all(lower < upper for lower, upper in pairwise(spends)):
            raise ValueError(f"tiers: min_spend must increase strictly tier by tier, got {spends}")
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tiers: names must be distinct, got {names}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(tier.name for tier in self.tiers)

    @property
    def thresholds(self) -> tuple[float, ...]:
        return tuple(tier.min_spend for tier in self.tiers)


def load_tier_rules(path: Path) -> TierRules:
    """Read rules from a ``.json`` or ``.toml`` file; every problem names the file and field."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(f"{path}: tier rules must be a .json or .toml file, not {suffix!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the tier rules ({error})") from error
    try:
        raw: Any = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()} ({error})") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: tier rules must be an object with window_days and tiers")
    try:
        return TierRules.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: invalid tier rules: {_problems(error)}") from error


def _problems(error: ValidationError) -> str:
    """Each problem as ``field: message``, with list positions (``tiers.1.min_spend``)."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def write_tier_rules(rules: TierRules, directory: Path) -> Path:
    """Write ``rules`` as ``directory / TIER_RULES_FILE`` (what the artifact carries)."""
    path = directory / TIER_RULES_FILE
    path.write_text(rules.model_dump_json(indent=2), encoding="utf-8")
    return path
