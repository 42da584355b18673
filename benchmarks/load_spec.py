"""What one load-generator run does, and the bounds every run must respect (pure).

A run is bounded in count *and* time (``max_requests`` and ``max_seconds``, each capped here),
targets loopback only, and has a bounded warm-up. Two shapes:

- closed loop (``rate`` is None): ``concurrency`` callers, each sending its next call as soon as
  the previous one answered; measures throughput at that concurrency;
- open loop (``rate`` set): calls are *scheduled* at a constant rate whatever the answers do,
  at most ``concurrency`` in flight (a call due while the limit is reached is counted as
  ``overflow`` and not sent); latency is measured from the scheduled time, so a slow server
  cannot hide its queueing (no coordinated omission).
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

# Hard caps: no spec can ask for more, whatever the caller passes.
MAX_REQUESTS_CAP = 200_000
MAX_SECONDS_CAP = 120.0
MAX_WARMUP_REQUESTS = 20_000
MAX_WARMUP_SECONDS = 30.0
MAX_CONCURRENCY = 512
MAX_RATE_RPS = 50_000.0
MAX_CHANNELS = 64

TARGETS = (
    "gateway.recommend",  # tollgate.v1.RecommendationService/Recommend
    "gateway.search",  # tollgate.v1.SearchService/Search
    "triton.recommender",  # the recommender model, called directly with tritonclient aio
    "triton.search",  # the product_search ensemble (query_encoder -> product_index)
    "triton.encoder",  # a query encoder model alone (QUERY -> EMBEDDING)
)
LOOPBACK_NAMES = {"localhost"}


class SpecError(ValueError):
    """A load spec that is malformed or outside the bounds."""


@dataclass(frozen=True)
class LoadSpec:
    target: str
    address: str  # host:port on loopback
    calls: list[dict[str, Any]]  # cycled through in order (call i uses calls[i % len(calls)])
    max_requests: int
    max_seconds: float
    concurrency: int = 1
    rate: float | None = None  # open loop when set (requests per second)
    warmup_requests: int = 0
    warmup_seconds: float = 0.0
    deadline_s: float = 2.0
    model: str = ""  # Triton model name for triton.* targets
    cycle: bool = True  # False: every measured call is distinct (max_requests capped at len(calls))
    record_outcomes: bool = False  # per-call (index, latency, status, extras) in the result
    tenant: str = "shop-uk"  # of calls that name none
    api_keys: dict[str, str] = field(default_factory=dict)  # tenant -> API key token (gateway targets)
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    channels: int = 1  # gateway targets: connections to open (a gateway with N workers needs >= N)
    cpus: list[int] | None = None  # pin the load generator to these cores (None: anywhere)

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown load spec fields: {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def measured_requests(self) -> int:
        """How many calls the measured phase may send at most."""
        return self.max_requests if self.cycle else min(self.max_requests, len(self.calls) - self.warmup_calls_used)

    @property
    def warmup_calls_used(self) -> int:
        """Distinct calls reserved for the warm-up when calls are not cycled (the measured phase starts after them)."""
        return 0 if self.cycle else min(self.warmup_requests, len(self.calls))


def validate(spec: LoadSpec) -> None:
    if spec.target not in TARGETS:
        raise SpecError(f"target {spec.target!r} is not one of {', '.join(TARGETS)}")
    check_loopback(spec.address)
    if not spec.calls:
        raise SpecError("calls must not be empty")
    _within("max_requests", spec.max_requests, 1, MAX_REQUESTS_CAP)
    _within("max_seconds", spec.max_seconds, 0.001, MAX_SECONDS_CAP)
    _within("concurrency", spec.concurrency, 1, MAX_CONCURRENCY)
    _within("warmup_requests", spec.warmup_requests, 0, MAX_WARMUP_REQUESTS)
    _within("warmup_seconds", spec.warmup_seconds, 0.0, MAX_WARMUP_SECONDS)
    _within("deadline_s", spec.deadline_s, 0.001, MAX_SECONDS_CAP)
    _within("channels", spec.channels, 1, MAX_CHANNELS)
    if spec.rate is not None:
        _within("rate", spec.rate, 0.1, MAX_RATE_RPS)
    if spec.target.startswith("triton.") and not spec.model:
        raise SpecError(f"target {spec.target} needs the Triton model name")
    if not spec.cycle and spec.measured_requests < 1:
        raise SpecError("cycle=False leaves no distinct call for the measured phase after the warm-up")


def check_loopback(address: str) -> None:
    """Raises SpecError unless ``address`` is host:port with a loopback host (127.0.0.0/8, ::1, localhost)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"address {address!r} is not host:port")
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SpecError(f"address {address!r} is not on loopback: the load generator only targets this machine")


def _within(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(f"{name} must be within {low}..{high}, got {value!r}")
