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
    tokens: dict[tuple[str, Role], str]  # (tenant, role) -> token; tenant "*" for global finance
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


def provision(directory: Path, tenants: tuple[str, ...] = LOCAL_TENANTS, *, reuse: bool = False) -> LocalAccess:
    """A key file in ``directory`` with a caller and a finance key per tenant, one
    global-finance key and one operator key (model rollouts), plus a cache secret. The tokens
    and the secret are also written to ``local-access.json`` beside it (mode 0600) for whoever
    drives the local stack by hand; with ``reuse`` an earlier run's keys are kept (``make
    serve`` restarts with the same tokens)."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = KeyFile(directory / "api-keys.json")
    readable = directory / "local-access.json"
    configs = tuple(TenantConfig(id=tenant, features=list(LOCAL_FEATURES)) for tenant in tenants)
    if reuse and keys.path.exists() and readable.exists():
        saved = json.loads(readable.read_text())
        tokens = {(name.split()[0], Role(name.split()[1])): token for name, token in saved["tokens"].items()}
        if {tenant for tenant, _ in tokens} >= set(tenants) and (ALL_TENANTS, Role.OPERATOR) in tokens:
            return LocalAccess(keys.path, tokens, configs, saved["cache_secret"])
    keys.path.unlink(missing_ok=True)
    tokens: dict[tuple[str, Role], str] = {}
    for tenant in tenants:
        for role in (Role.CALLER, Role.FINANCE):
            tokens[(tenant, role)] = keys.create(tenant, role, label=f"local {role.value}")[1]
    tokens[(ALL_TENANTS, Role.FINANCE_GLOBAL)] = keys.create(ALL_TENANTS, Role.FINANCE_GLOBAL, label="local finance")[1]
    tokens[(ALL_TENANTS, Role.OPERATOR)] = keys.create(ALL_TENANTS, Role.OPERATOR, label="local operator")[1]
    cache_secret = secrets.token_urlsafe(32)
    readable.write_text(
        json.dumps(
            {"tokens": {f"{tenant} {role.value}": token for (tenant, role), token in tokens.items()}, "cache_secret": cache_secret},
            indent=2,
        )
    )
    readable.chmod(0o600)
    return LocalAccess(keys.path, tokens, configs, cache_secret)
