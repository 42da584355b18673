"""TLS for the gateway's listener, and optional mutual TLS (the tenant then comes from the
client certificate's common name; see gateway/authentication.py)."""

from __future__ import annotations

from pathlib import Path

import grpc


def server_credentials(cert_file: Path, key_file: Path, client_ca_file: Path | None = None) -> grpc.ServerCredentials:
    """Credentials from PEM files; with ``client_ca_file``, every client must present a
    certificate signed by that CA. (gRPC Python either requires client certificates or does not
    ask for them: there is no "verify if presented".)"""
    return grpc.ssl_server_credentials(
        [(key_file.read_bytes(), cert_file.read_bytes())],
        root_certificates=client_ca_file.read_bytes() if client_ca_file else None,
        require_client_auth=client_ca_file is not None,
    )
