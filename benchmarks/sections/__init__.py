"""The suite's sections, one module each; every section takes a :class:`Context` and returns a ``Section``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runner import Profile, Runner
from benchmarks.stack import RunningBench
from costing.price_book import PriceBook
from deploy.local.settings import LocalStackSettings
from gateway.settings import Settings


@dataclass
class Context:
    settings: Settings
    local_settings: LocalStackSettings  # model repository, data and run directories
    profile: Profile
    runner: Runner
    stack: RunningBench
    book: PriceBook
    run_dir: Path
    seed: int
    search_models: bool  # Triton has the search models loaded
    shared: dict[str, Any] = field(default_factory=dict)  # results one section hands to a later one
