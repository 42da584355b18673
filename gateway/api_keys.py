"""API keys: who a caller is, from a credential only the gateway can check.

A key is ``tgk_<key_id>_<secret>``: ``key_id`` names the key in lists and logs, ``secret`` is
256 random bits. Only the SHA-256 of the secret is stored (a slow, salted hash buys nothing
against 256-bit secrets; it only slows every call). The store is one JSON file, written
atomically under a lock by ``tollgate keys …`` and re-read by the gateways when it changes
(a Kubernetes Secret mounted as a file updates in place), so keys take effect without a
restart. Rotation issues a new key for the same tenant and role and lets the old one live for a
grace period, so callers switch without a failed call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path

TOKEN_PREFIX = "tgk_"
TOKEN = re.compile(r"tgk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
STORE_VERSION = 1
# The tenant of a key whose rights span every tenant (global finance).
ALL_TENANTS = "*"
# Verified tokens remembered between file changes (one per active key in practice).
MAX_VERIFIED_TOKENS = 10_000


class Role(str, Enum):
    """What a key may do. ``caller``: Recommend, Search and RecordOutcome for its own tenant;
    ``finance``: CostReport for its own tenant; ``finance-global``: CostReport for all tenants;
    ``operator``: the model rollout (tollgate.v1.ModelRollout), which every tenant's calls share."""

    CALLER = "caller"
    FINANCE = "finance"
    FINANCE_GLOBAL = "finance-global"
    OPERATOR = "operator"


# Roles whose rights span every tenant: their keys belong to tenant "*".
GLOBAL_ROLES = frozenset({Role.FINANCE_GLOBAL, Role.OPERATOR})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its tenant (canonical id) and role; ``key_id`` for logs."""

    tenant: str
    role: Role
    key_id: str


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    tenant: str
    role: str
    secret_sha256: str
    created_at: str
    label: str = ""
    expires_at: str | None = None  # set on rotation: the old key's grace period ends here
    revoked_at: str | None = None

    def active_at(self, now: dt.datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < dt.datetime.fromisoformat(self.expires_at)


class KeyStoreError(Exception):
    """A key store that cannot be read or written, or an operation on a key that does not exist."""


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def check_tenant_id(tenant: str) -> str:
    if tenant != ALL_TENANTS and not TENANT_ID.fullmatch(tenant):
        raise KeyStoreError(f"tenant {tenant!r}: use 1-63 lower-case letters, digits or '-', starting with a letter or digit")
    return tenant


class KeyFile:
    """The JSON file of stored keys: atomic writes under an exclusive lock (``tollgate keys``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[StoredKey]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise KeyStoreError(f"cannot read the key store {self.path}: {error}") from error
        if data.get("version") != STORE_VERSION:
            raise KeyStoreError(f"{self.path}: unknown key store version {data.get('version')!r}")
        return [StoredKey(**entry) for entry in data["keys"]]

    @contextlib.contextmanager
    def editing(self) -> Iterator[list[StoredKey]]:
        """Read, let the caller change the list, write it back atomically; one editor at a time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = self.read()
            yield keys
            self._write(keys)

    def _write(self, keys: list[StoredKey]) -> None:
        body = json.dumps({"version": STORE_VERSION, "keys": [asdict(k) for k in keys]}, indent=2)
        handle, temp = tempfile.mkstemp(prefix=".keys-", dir=self.path.parent)
        with os.fdopen(handle, "w") as out:
            out.write(body + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, self.path)

    def create(self, tenant: str, role: Role, label: str = "") -> tuple[StoredKey, str]:
        """A new key; returns it and the token, which is shown once and never stored."""
        check_tenant_id(tenant)
        if (tenant == ALL_TENANTS) != (role in GLOBAL_ROLES):
            raise KeyStoreError(f"role {role.value} needs {'tenant *' if role in GLOBAL_ROLES else 'a tenant id'}")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        stored = StoredKey(key_id, tenant, role.value, _sha256(secret), _now().isoformat(timespec="seconds"), label)
        with self.editing() as keys:
            keys.append(stored)
        return stored, f"{TOKEN_PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> StoredKey:
        with self.editing() as keys:
            index = self._index(keys, key_id)
            keys[index] = replace(keys[index], revoked_at=_now().isoformat(timespec="seconds"))
            return keys[index]

    def rotate(self, key_id: str, grace: dt.timedelta) -> tuple[StoredKey, str]:
        """A new key with the same tenant, role and label; the old one expires after ``grace``."""
        old = self._find(key_id)
        if not old.active_at(_now()):
            raise KeyStoreError(f"key {key_id} is revoked or expired: create a new one instead")
        new, token = self.create(old.tenant, Role(old.role), old.label)
        with self.editing() as keys:
            index = self._index(keys, key_id)
            keys[index] = replace(keys[index], expires_at=(_now() + grace).isoformat(timespec="seconds"))
        return new, token

    def _find(self, key_id: str) -> StoredKey:
        keys = self.read()
        return keys[self._index(keys, key_id)]

    @staticmethod
    def _index(keys: list[StoredKey], key_id: str) -> int:
        for index, key in enumerate(keys):
            if key.key_id == key_id:
                return index
        raise KeyStoreError(f"no key {key_id!r}")


class KeyStore:
    """The gateway's view of the key file: checks tokens in O(1), re-reads the file when its
    modification time or size changes (looked at most every ``reload_s``)."""

    def __init__(self, path: Path, reload_s: float = 2.0, tenants: frozenset[str] | None = None) -> None:
        """``tenants``: the registered tenants; keys of any other tenant are ignored."""
        self._file = KeyFile(path)
        self._reload_s = reload_s
        self._tenants = tenants
        self._by_id: dict[str, StoredKey] = {}
        # Tokens already verified against the current file -> their principal, for keys without
        # an expiry (a caller repeats its token on every call; the SHA-256 and the parsing are
        # then done once). Emptied whenever the file changes, so revocation applies as before.
        self._verified: dict[str, Principal] = {}
        self._signature: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self.reload()

    def reload(self) -> None:
        """Re-reads the file if it changed; a broken file keeps the last good keys (and raises)."""
        self._checked_at = time.monotonic()
        try:
            stat = self._file.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            signature = (0, 0)
        if signature == self._signature:
            return
        keys = self._file.read()
        self._by_id = {k.key_id: k for k in keys if self._tenants is None or k.tenant in self._tenants or k.tenant == ALL_TENANTS}
        self._verified = {}
        self._signature = signature

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid, active token; None for anything else."""
        if time.monotonic() - self._checked_at >= self._reload_s:
            with contextlib.suppress(KeyStoreError):
                self.reload()
        verified = self._verified.get(token)
        if verified is not None:
            return verified
        match = TOKEN.fullmatch(token)
        if match is None:
            return None
        stored = self._by_id.get(match[1])
        if stored is None or not hmac.compare_digest(stored.secret_sha256, _sha256(match[2])):
            return None
        if not stored.active_at(_now()):
            return None
        principal = Principal(stored.tenant, Role(stored.role), stored.key_id)
        if stored.expires_at is None:
            if len(self._verified) >= MAX_VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = principal
        return principal

    def __len__(self) -> int:
        return len(self._by_id)
