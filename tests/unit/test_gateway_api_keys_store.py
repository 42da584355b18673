"""The API key file and the gateway's view of it: the file's format, every error's message, the
reload interval, expiry at its exact instant, and which tenants' keys count."""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from types import SimpleNamespace

import pytest

from gateway import api_keys
from gateway.api_keys import KeyFile, KeyStore, KeyStoreError, Principal, Role, check_tenant_id


@pytest.fixture
def key_file(tmp_path) -> KeyFile:
    return KeyFile(tmp_path / "keys" / "keys.json")


def test_the_file_is_versioned_two_space_json_readable_by_the_owner_only(key_file):
    stored, _ = key_file.create("acme", Role.CALLER)
    assert stored.label == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", stored.created_at), "UTC, to the second"
    expected = {"version": 1, "keys": [{
        "key_id": stored.key_id, "tenant": "acme", "role": "caller", "secret_sha256": stored.secret_sha256,
        "created_at": stored.created_at, "label": "", "expires_at": None, "revoked_at": None,
    }]}  # fmt: skip
    assert key_file.path.read_text() == json.dumps(expected, indent=2) + "\n"
    assert key_file.path.stat().st_mode & 0o777 == 0o600


def test_the_new_file_is_written_beside_the_old_one_whatever_the_system_temp_dir(key_file, monkeypatch):
    """The temporary file must be on the store's own filesystem for the rename to be atomic."""
    monkeypatch.setattr(tempfile, "tempdir", str(key_file.path.parent / "no-such-dir"))
    key_file.create("acme", Role.CALLER)
    assert [p.name for p in key_file.path.parent.iterdir() if not p.name.startswith("keys.json")] == []


@pytest.mark.parametrize(
    ("tenant", "role", "message"),
    [
        ("Acme", Role.CALLER, "tenant 'Acme': use 1-63 lower-case letters, digits or '-', starting with a letter or digit"),
        ("*", Role.CALLER, "role caller needs a tenant id"),
        ("acme", Role.FINANCE_GLOBAL, "role finance-global needs tenant *"),
    ],
)
def test_a_key_that_cannot_exist_is_refused_saying_why(key_file, tenant, role, message):
    with pytest.raises(KeyStoreError) as raised:
        key_file.create(tenant, role)
    assert str(raised.value) == message


def test_check_tenant_id_accepts_the_wildcard_and_canonical_ids():
    assert check_tenant_id("*") == "*"
    assert check_tenant_id("a" * 63) == "a" * 63
    with pytest.raises(KeyStoreError):
        check_tenant_id("a" * 64)


def test_errors_on_the_file_name_the_file_and_the_problem(key_file):
    with pytest.raises(KeyStoreError) as raised:
        key_file.revoke("0123456789ab")
    assert str(raised.value) == "no key '0123456789ab'"
    key_file.path.parent.mkdir(parents=True, exist_ok=True)
    key_file.path.write_text(json.dumps({"version": 2, "keys": []}))
    with pytest.raises(KeyStoreError) as raised:
        key_file.read()
    assert str(raised.value) == f"{key_file.path}: unknown key store version 2"
    key_file.path.write_text("{not json")
    with pytest.raises(KeyStoreError) as raised:
        key_file.read()
    assert str(raised.value).startswith(f"cannot read the key store {key_file.path}: Expecting property name")


def test_an_expired_key_cannot_be_rotated(key_file):
    old, _ = key_file.create("acme", Role.CALLER, "ci")
    key_file.rotate(old.key_id, dt.timedelta(seconds=-1))  # its grace period is already over
    with pytest.raises(KeyStoreError) as raised:
        key_file.rotate(old.key_id, dt.timedelta(hours=1))
    assert str(raised.value) == f"key {old.key_id} is revoked or expired: create a new one instead"


class Clock:
    def __init__(self):
        self.monotonic_s = 1000.0
        self.utc = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(api_keys, "time", SimpleNamespace(monotonic=lambda: clock.monotonic_s))
    monkeypatch.setattr(api_keys, "_now", lambda: clock.utc)
    return clock


def test_the_store_looks_at_the_file_again_after_two_seconds_by_default(key_file, clock):
    store = KeyStore(key_file.path)
    _, token = key_file.create("acme", Role.CALLER)
    clock.monotonic_s += 1.99
    assert store.authenticate(token) is None, "not looked at again yet"
    clock.monotonic_s += 0.01
    assert store.authenticate(token) is not None, "2.0 s after the last look"


def test_a_key_with_an_expiry_stops_at_that_instant_even_once_verified(key_file, clock):
    stored, token = key_file.create("acme", Role.CALLER)
    key_file.rotate(stored.key_id, dt.timedelta(minutes=5))
    expires_at = dt.datetime.fromisoformat(key_file.read()[0].expires_at)
    store = KeyStore(key_file.path)
    clock.utc = expires_at - dt.timedelta(seconds=1)
    assert store.authenticate(token) == Principal("acme", Role.CALLER, stored.key_id)
    clock.utc = expires_at
    assert store.authenticate(token) is None, "expired at its expires_at, not a second later"


def test_only_keys_of_registered_tenants_and_global_finance_count(key_file):
    _, acme = key_file.create("acme", Role.FINANCE)
    _, every = key_file.create("*", Role.FINANCE_GLOBAL)
    _, other = key_file.create("globex", Role.CALLER)
    store = KeyStore(key_file.path, tenants=frozenset({"acme"}))
    assert len(store) == 2
    assert store.authenticate(acme).tenant == "acme"
    assert store.authenticate(every).role is Role.FINANCE_GLOBAL
    assert store.authenticate(other) is None
