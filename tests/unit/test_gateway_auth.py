"""API keys, authentication and the tenant registry, without a server."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from gateway.api_keys import KeyFile, KeyStore, KeyStoreError, Principal, Role
from gateway.authentication import CERT_COMMON_NAME, Authenticator, require
from gateway.errors import InvalidArgument, PermissionDenied, Unauthenticated
from gateway.tenants import INVALID_FEATURE, OTHER_FEATURE, TenantConfig, TenantRegistry, tenant_rates


@pytest.fixture
def key_file(tmp_path):
    return KeyFile(tmp_path / "keys.json")


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_only_a_hash_of_the_secret_is_stored(key_file):
    stored, token = key_file.create("shop-uk", Role.CALLER, "web frontend")
    text = key_file.path.read_text()
    secret = token.rsplit("_", 1)[1]
    assert secret not in text and token not in text
    assert stored.key_id in text
    assert oct(os.stat(key_file.path).st_mode & 0o777) == "0o600"


def test_a_created_key_authenticates_as_its_tenant_and_role(key_file):
    _, token = key_file.create("shop-uk", Role.CALLER)
    store = KeyStore(key_file.path)
    principal = store.authenticate(token)
    assert principal is not None
    assert (principal.tenant, principal.role) == ("shop-uk", Role.CALLER)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret, right key id
        lambda t: "tgk_000000000000_" + t.rsplit("_", 1)[1],  # unknown key id
        lambda t: t.upper(),
        lambda t: "",
        lambda t: t + "\n",
        lambda t: "shop-uk",  # a tenant name is not a credential
    ],
)
def test_anything_but_the_exact_token_is_refused(key_file, mangle):
    _, token = key_file.create("shop-uk", Role.CALLER)
    assert KeyStore(key_file.path).authenticate(mangle(token)) is None


def test_revocation_takes_effect_without_a_restart(key_file):
    stored, token = key_file.create("shop-uk", Role.CALLER)
    store = KeyStore(key_file.path, reload_s=0.0)
    assert store.authenticate(token) is not None
    key_file.revoke(stored.key_id)
    assert store.authenticate(token) is None


def test_rotation_keeps_the_old_key_for_its_grace_period(key_file):
    old, old_token = key_file.create("shop-uk", Role.CALLER, "app")
    store = KeyStore(key_file.path, reload_s=0.0)
    new, new_token = key_file.rotate(old.key_id, dt.timedelta(hours=1))
    assert (new.tenant, new.role, new.label) == ("shop-uk", "caller", "app")
    assert store.authenticate(old_token) is not None  # callers switch without a failed call
    assert store.authenticate(new_token) is not None
    key_file.rotate(new.key_id, dt.timedelta(0))  # no grace: the replaced key stops at once
    assert store.authenticate(new_token) is None


def test_keys_of_unregistered_tenants_are_ignored(key_file):
    _, token = key_file.create("gone", Role.CALLER)
    assert KeyStore(key_file.path, tenants=frozenset({"shop-uk"})).authenticate(token) is None


@pytest.mark.parametrize("tenant", ["Shop-UK", "shop uk", "", "x" * 64, "shop-uk\n", "[/]"])
def test_tenant_ids_are_canonical(key_file, tenant):
    with pytest.raises(KeyStoreError):
        key_file.create(tenant, Role.CALLER)


def test_global_finance_and_tenant_wildcard_go_together(key_file):
    with pytest.raises(KeyStoreError):
        key_file.create("*", Role.CALLER)
    with pytest.raises(KeyStoreError):
        key_file.create("shop-uk", Role.FINANCE_GLOBAL)
    stored, _ = key_file.create("*", Role.FINANCE_GLOBAL)
    assert stored.tenant == "*"


def test_a_broken_key_file_keeps_the_last_good_keys(key_file):
    _, token = key_file.create("shop-uk", Role.CALLER)
    store = KeyStore(key_file.path, reload_s=0.0)
    key_file.path.write_text("{not json")
    assert store.authenticate(token) is not None
    key_file.path.write_text('{"version": 1, "keys": []}')
    assert store.authenticate(token) is None


def test_authenticator_takes_the_tenant_from_the_key_never_from_metadata(key_file):
    _, token = key_file.create("shop-uk", Role.CALLER)
    auth = Authenticator(KeyStore(key_file.path))
    principal = auth.authenticate([("x-tenant-id", "victim"), *_bearer(token)])
    assert principal.tenant == "shop-uk"
    with pytest.raises(Unauthenticated, match="missing credential"):
        auth.authenticate([("x-tenant-id", "victim")])
    with pytest.raises(Unauthenticated, match="Bearer"):
        auth.authenticate([("authorization", token)])
    with pytest.raises(Unauthenticated, match="invalid"):
        auth.authenticate(_bearer(token[:-2]))


def test_client_certificate_names_a_registered_tenant():
    auth = Authenticator(None, cert_tenants=frozenset({"shop-uk"}))
    principal = auth.authenticate([], {CERT_COMMON_NAME: [b"shop-uk"]})
    assert (principal.tenant, principal.role) == ("shop-uk", Role.CALLER)
    with pytest.raises(Unauthenticated):
        auth.authenticate([], {CERT_COMMON_NAME: [b"someone-else"]})
    with pytest.raises(Unauthenticated):
        Authenticator(None).authenticate([], {CERT_COMMON_NAME: [b"shop-uk"]})  # cert identity off


def test_require_checks_the_role():
    finance = Principal("shop-uk", Role.FINANCE, "k1")
    require(finance, Role.FINANCE, Role.FINANCE_GLOBAL)
    with pytest.raises(PermissionDenied, match="needs caller"):
        require(finance, Role.CALLER)


def test_undeclared_features_are_rejected_or_counted_as_other():
    tenants = [TenantConfig(id="shop-uk", features=["home_feed", "cart_upsell"])]
    assert TenantRegistry(tenants).feature_label("shop-uk", "home_feed") == "home_feed"
    with pytest.raises(InvalidArgument) as error:
        TenantRegistry(tenants).feature_label("shop-uk", "search_box")
    assert error.value.field == "feature"
    assert TenantRegistry(tenants, "other").feature_label("shop-uk", "anything_else") == OTHER_FEATURE
    # Another tenant's declared feature is not this tenant's.
    two = [*tenants, TenantConfig(id="shop-de", features=["search_box"])]
    assert TenantRegistry(two, "other").feature_label("shop-uk", "search_box") == OTHER_FEATURE


def test_budgets_must_name_a_registered_tenant_or_a_declared_feature():
    registry = TenantRegistry([TenantConfig(id="shop-uk", features=["home_feed"])])
    assert registry.unknown_budget_names([("tenant", "shop-uk"), ("feature", "home_feed")]) == []
    assert registry.unknown_budget_names([("tenant", "Shop-UK"), ("feature", "homefeed")]) == [
        "tenant 'Shop-UK'", "feature 'homefeed'"
    ]


def test_tenant_rates_come_from_the_config_with_a_one_second_burst_by_default():
    tenants = [
        TenantConfig(id="a", features=["home_feed"], rate_per_s=50, burst=200),
        TenantConfig(id="b", features=["home_feed"], rate_per_s=0.5),
        TenantConfig(id="c", features=["home_feed"]),
    ]
    rates = tenant_rates(tenants)
    assert set(rates) == {"a", "b"}, "a tenant without a rate is not limited"
    assert (rates["a"].per_second, rates["a"].burst) == (50, 200)
    assert (rates["b"].per_second, rates["b"].burst) == (0.5, 1.0), "at least one call of burst"


def test_labels_are_the_feature_other_or_invalid_never_what_the_caller_sent():
    registry = TenantRegistry([TenantConfig(id="shop-uk", features=["home_feed"])])
    assert registry.label("shop-uk", "home_feed") == "home_feed"
    assert registry.label("shop-uk", "cart_upsell") == INVALID_FEATURE
    assert registry.label("shop-uk", "Home Feed") == INVALID_FEATURE
    assert registry.label("nobody", "home_feed") == INVALID_FEATURE
    counting = TenantRegistry([TenantConfig(id="shop-uk", features=["home_feed"])], "other")
    assert counting.label("shop-uk", "cart_upsell") == OTHER_FEATURE
    assert counting.label("shop-uk", "Bad Label") == INVALID_FEATURE, "malformed is invalid even when counting"
    assert registry.ids == frozenset({"shop-uk"})
    with pytest.raises(InvalidArgument, match=r"'cart_upsell' is not declared for tenant shop-uk \(declared: home_feed\)"):
        registry.feature_label("shop-uk", "cart_upsell")
