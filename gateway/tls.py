"""TLS for the gateway's listener, and optional mutual TLS (the tenant then comes from the
client certificate's common name; see gateway/authentication.py)."""

from __future__ import annotations

from pathlib import Path

import grpc


def server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None, *, require_client_cert: bool = False
) -> grpc.ServerCredentials:
    """Credentials from PEM files; with ``client_ca_file``, client certificates signed by that CA
    are verified (and required when ``require_client_cert``)."""
    if require_client_cert and client_ca_file is None:
        raise ValueError("require_client_cert needs a client CA file")
    return grpc.ssl_server_credentials(
        [(key_file.read_bytes(), cert_file.read_bytes())],
        root_certificates=client_ca_file.read_bytes() if client_ca_file else None,
        require_client_auth=require_client_cert,
    )
