"""Credentials of a local stack (demo, serve, tests, benchmarks): registered tenants, an API key
file with a key per tenant and role, and a cache secret, made fresh in the run directory so the
two commands work with no manual step. Production makes its own with ``tollgate keys``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from gateway.api_keys import ALL_TENANTS, KeyFile, Role
from gateway.tenants import TenantConfig

# Every product surface of the demo shop and the tests.
LOCAL_FEATURES = ("home_feed", "cart_upsell", "order_confirmation", "search_box", "search_autocomplete")
LOCAL_TENANTS = ("shop-uk", "shop-eu", "acme", "globex")


@dataclass(frozen=True)
class LocalAccess:
    """Where the local keys are, every token (by tenant and role), and the gateway settings that use them."""

    keys_file: Path
    tokens: dict[tuple[str, Role], str]
    tenants: tuple[TenantConfig, ...]
    cache_secret: str

    def metadata(self, tenant: str = "shop-uk", role: Role = Role.CALLER) -> tuple[tuple[str, str], ...]:
        """Call metadata that authenticates as ``tenant`` with ``role``."""
        return (("authorization", f"Bearer {self.tokens[(tenant, role)]}"),)

    def settings(self) -> dict[str, object]:
        """Gateway settings (field -> value) of this access, for settings_env."""
        return {
            "tenants": json.dumps([tenant.model_dump() for tenant in self.tenants]),
            "api_keys_file": self.keys_file,
            "cache_secret": self.cache_secret,
        }


def provision(directory: Path, tenants: tuple[str, ...] = LOCAL_TENANTS) -> LocalAccess:
    """A fresh key file in ``directory`` with a caller and a finance key per tenant and one
    global-finance key; the tokens are also written to ``tokens.json`` beside it (mode 0600), for
    whoever drives the local stack by hand."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = KeyFile(directory / "api-keys.json")
    keys.path.unlink(missing_ok=True)
    tokens: dict[tuple[str, Role], str] = {}
    for tenant in tenants:
        for role in (Role.CALLER, Role.FINANCE):
            tokens[(tenant, role)] = keys.create(tenant, role, label=f"local {role.value}")[1]
    tokens[(ALL_TENANTS, Role.FINANCE_GLOBAL)] = keys.create(ALL_TENANTS, Role.FINANCE_GLOBAL, label="local finance")[1]
    readable = directory / "tokens.json"
    readable.write_text(json.dumps({f"{tenant} {role.value}": token for (tenant, role), token in tokens.items()}, indent=2))
    readable.chmod(0o600)
    configs = tuple(TenantConfig(id=tenant, features=list(LOCAL_FEATURES)) for tenant in tenants)
    return LocalAccess(keys.path, tokens, configs, secrets.token_urlsafe(32))
