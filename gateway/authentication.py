"""The caller's identity at the front door: an API key (``authorization: Bearer tgk_…``) or,
with mutual TLS, the client certificate. Never free-text metadata: a tenant a caller names
itself bills nobody.

No grpc import: ``authenticate`` takes the call's metadata and its TLS auth context as plain
values, so the rules are tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from gateway.api_keys import TENANT_ID, KeyStore, Principal, Role
from gateway.errors import PermissionDenied, Unauthenticated

AUTHORIZATION_KEY = "authorization"
BEARER = "bearer "
# The TLS auth-context property that carries the client certificate's subject common name.
CERT_COMMON_NAME = "x509_common_name"


class Authenticator:
    """Turns a call's credential into a :class:`Principal`, or raises Unauthenticated."""

    def __init__(self, keys: KeyStore | None, *, cert_tenants: frozenset[str] = frozenset()) -> None:
        """``cert_tenants``: registered tenants that may authenticate by client certificate
        (its common name is the tenant id); empty turns certificate identity off."""
        self._keys = keys
        self._cert_tenants = cert_tenants

    def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]], auth_context: Mapping[str, Sequence[bytes]] | None = None
    ) -> Principal:
        token = next((value for name, value in metadata if name == AUTHORIZATION_KEY), None)
        return self.authenticate_token(token, lambda: auth_context)

    def authenticate_token(
        self, token: str | bytes | None, auth_context: Callable[[], Mapping[str, Sequence[bytes]] | None]
    ) -> Principal:
        """The caller of a call whose ``authorization`` header is ``token`` (None: absent);
        ``auth_context()`` (the TLS properties) is read only when there is no token."""
        if token is not None:
            return self._from_token(token if isinstance(token, str) else token.decode("latin-1"))
        context = auth_context() if self._cert_tenants else None
        if context:
            names = context.get(CERT_COMMON_NAME) or ()
            if names:
                tenant = names[0].decode("utf-8", "replace")
                if tenant in self._cert_tenants:
                    return Principal(tenant, Role.CALLER, key_id=f"cert:{tenant}")
                raise Unauthenticated("client certificate names no registered tenant")
        raise Unauthenticated("missing credential: send 'authorization: Bearer <API key>' (tollgate keys create)")

    def _from_token(self, header: str) -> Principal:
        if self._keys is None:
            raise Unauthenticated("API keys are not configured on this gateway")
        if header[: len(BEARER)].lower() != BEARER:
            raise Unauthenticated("authorization: expected 'Bearer <API key>'")
        principal = self._keys.authenticate(header[len(BEARER) :].strip())
        if principal is None:
            raise Unauthenticated("invalid, expired or revoked API key")
        return principal


def require(principal: Principal, *roles: Role) -> None:
    """PermissionDenied unless the principal holds one of ``roles``."""
    if principal.role not in roles:
        allowed = ", ".join(role.value for role in roles)
        raise PermissionDenied(f"key {principal.key_id} has role {principal.role.value}; this call needs {allowed}")


def is_tenant_id(text: str) -> bool:
    return TENANT_ID.fullmatch(text) is not None
