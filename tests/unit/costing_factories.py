"""Test factories for costing: records written with amounts in currency units (as a person
reads them), stored as the exact integer pico-units the ledger keeps."""

from __future__ import annotations

from typing import Any

from costing.money import to_pico
from costing.records import CostRecord

_PARTS = ("compute", "gateway", "cache", "egress", "avoided")


def record_from(**fields: Any) -> CostRecord:
    """A CostRecord from legacy-style fields: ``cost_compute=1e-8`` (currency units, read as the
    decimal written) or ``cost_compute_pico=10_000``; ``cost_total`` is ignored and the total is
    the exact sum of the parts."""
    fields.pop("cost_total", None)
    fields.pop("cost_total_pico", None)
    for part in _PARTS:
        if f"cost_{part}" in fields:
            amount = fields.pop(f"cost_{part}")
            fields.setdefault(f"cost_{part}_pico", to_pico(amount))  # an explicit pico amount wins
        fields.setdefault(f"cost_{part}_pico", 0)
    fields["cost_total_pico"] = sum(fields[f"cost_{part}_pico"] for part in _PARTS if part != "avoided")
    return CostRecord(**fields)
