"""The price book: versioned unit prices that turn measured usage into money.

The book is a TOML file (see ``price_book.toml`` beside this module) validated into frozen
pydantic models, so a typo or a negative price stops the process at start-up instead of
mispricing requests for a month.

It prices every resource that has an origin charge (``costing.reconciliation``): compute (per
pool: unit price, the units provisioned, private/public), the gateway replicas (vCPUs each), the
cache node, bandwidth (egress per GB, by network path), storage (per GB-month) and the fixed
monthly operational overhead (people, monitoring). Monthly prices are prorated by *calendar*
month (28 to 31 days), never by a fixed number of hours.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Device = Literal["cpu", "gpu"]
Unit = Literal["vCPU", "GPU"]

# A device is always priced in the same unit; a pool that says otherwise is a mistake.
UNIT_OF_DEVICE: dict[str, str] = {"cpu": "vCPU", "gpu": "GPU"}


class PriceBookError(ValueError):
    """The price book file is missing, is not TOML, or does not validate."""


class UnknownPoolError(KeyError):
    """A pool name that the price book does not list."""

    def __init__(self, pool: str, known: Iterable[str]) -> None:
        self.pool = pool
        self.known = tuple(sorted(known))
        super().__init__(pool)

    def __str__(self) -> str:
        return f"unknown pool {self.pool!r}; the price book lists: {', '.join(self.known) or '(none)'}"


class _FrozenModel(BaseModel):
    # extra="forbid": a misspelt key in the price book is an error, not a silently ignored line.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Pool(_FrozenModel):
    """One pool of model servers and what an hour of one of its units costs."""

    device: Device
    unit: Unit
    usd_per_unit_hour: float = Field(ge=0, allow_inf_nan=False)
    location: Literal["private", "public"]
    source: str = Field(min_length=1, description="Where the price comes from.")
    provisioned_units: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="Units (vCPUs or GPUs) paid for whether used or not; 0 = on demand, billed for use only.",
    )

    @model_validator(mode="after")
    def _unit_matches_device(self) -> Pool:
        expected = UNIT_OF_DEVICE[self.device]
        if self.unit != expected:
            raise ValueError(f"a {self.device} pool is priced per {expected}, not per {self.unit}")
        return self


class GatewayPrice(_FrozenModel):
    """The gateway's own CPU: each replica is provisioned ``provisioned_vcpus`` while it runs."""

    usd_per_vcpu_hour: float = Field(ge=0, allow_inf_nan=False)
    provisioned_vcpus: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="vCPUs paid for per running replica (its CPU request)."
    )
    source: str = Field(min_length=1)


CACHE_POOL = "cache"  # the pool that serves cache hits
CACHE_DEVICE = "redis"


class CachePrice(_FrozenModel):
    """The result cache: its node(s), of which each operation is charged a share."""

    usd_per_million_ops: float = Field(ge=0, allow_inf_nan=False)
    usd_per_node_hour: float = Field(0.0, ge=0, allow_inf_nan=False, description="What one cache node costs.")
    nodes: float = Field(0.0, ge=0, allow_inf_nan=False, description="Cache nodes paid for whether used or not.")
    source: str = Field(min_length=1)


class EgressPath(_FrozenModel):
    """What a GB costs on one network path (same zone, cross zone, internet)."""

    usd_per_gb: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)


class EgressPrice(_FrozenModel):
    """Response bytes sent to callers, priced by the network path they take. ``default_path``
    applies to callers whose listener or tenant names none: what the cloud charges an
    in-cluster caller."""

    default_path: str = "same_zone"
    paths: dict[str, EgressPath] = Field(
        default_factory=lambda: {"same_zone": EgressPath(usd_per_gb=0.0, source="not priced")}
    )

    @model_validator(mode="before")
    @classmethod
    def _no_flat_price(cls, data: object) -> object:
        if isinstance(data, dict) and "usd_per_gb" in data:
            raise ValueError(
                "egress is priced per network path: [egress.paths.<name>] usd_per_gb = ..., and default_path"
            )
        return data

    @model_validator(mode="after")
    def _default_is_a_path(self) -> EgressPrice:
        if self.default_path not in self.paths:
            raise ValueError(f"default_path {self.default_path!r} is not one of the paths: {', '.join(self.paths)}")
        return self

    def path(self, name: str) -> EgressPath:
        """The path ``name`` ("" = the default); raises KeyError naming the known paths."""
        try:
            return self.paths[name or self.default_path]
        except KeyError:
            raise KeyError(f"unknown egress path {name!r}; the price book lists: {', '.join(self.paths)}") from None


class StoragePrice(_FrozenModel):
    """Disks the service keeps provisioned (model repository, ledger, logs)."""

    usd_per_gb_month: float = Field(ge=0, allow_inf_nan=False)
    provisioned_gb: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)


class OperationsItem(_FrozenModel):
    """One fixed monthly operational cost (people, monitoring, ...)."""

    usd_per_month: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)


class PriceBook(_FrozenModel):
    version: str = Field(min_length=1)
    # Prices are named usd_*; another currency would need other field names, not just this one.
    currency: Literal["USD"]
    effective_date: dt.date
    effective_until: dt.date | None = Field(None, description="First day this version no longer applies.")
    gateway: GatewayPrice
    cache: CachePrice
    egress: EgressPrice = EgressPrice()
    storage: StoragePrice = StoragePrice(usd_per_gb_month=0.0, provisioned_gb=0.0, source="not priced")
    operations: dict[str, OperationsItem] = Field(default_factory=dict)
    pools: dict[str, Pool] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_fixed_month(cls, data: object) -> object:
        if isinstance(data, dict) and "hours_per_month" in data:
            raise ValueError(
                "hours_per_month is gone: monthly prices are prorated by calendar month (28 to 31 days); remove it"
            )
        return data

    @model_validator(mode="after")
    def _cache_is_not_a_pool(self) -> PriceBook:
        if CACHE_POOL in self.pools:
            raise ValueError(f"{CACHE_POOL!r} is the pool of cache hits, priced under [cache]: name the Triton pool otherwise")
        return self

    @model_validator(mode="after")
    def _dates_in_order(self) -> PriceBook:
        if self.effective_until is not None and self.effective_until <= self.effective_date:
            raise ValueError(
                f"effective_until {self.effective_until} is not after effective_date {self.effective_date}"
            )
        return self

    def in_effect_on(self, day: dt.date) -> bool:
        """Whether this version applies on ``day``."""
        return self.effective_date <= day and (self.effective_until is None or day < self.effective_until)

    @property
    def operations_usd_per_month(self) -> float:
        return sum(item.usd_per_month for item in self.operations.values())

    def pool(self, name: str) -> Pool:
        """The pool called ``name``; raises UnknownPoolError naming the known pools."""
        try:
            return self.pools[name]
        except KeyError:
            raise UnknownPoolError(name, self.pools) from None


def load_price_book(path: Path | str) -> PriceBook:
    """Read and validate the price book at ``path``; raises PriceBookError saying what is wrong."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as exc:
        raise PriceBookError(f"cannot read price book {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PriceBookError(f"price book {path} is not valid TOML: {exc}") from exc
    try:
        return PriceBook.model_validate(raw)
    except ValidationError as exc:
        raise PriceBookError(f"invalid price book {path}:\n{_describe(exc)}") from exc


def _describe(error: ValidationError) -> str:
    """One line per problem, addressed like the TOML key (``pools.gpu-local.unit``)."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines)
