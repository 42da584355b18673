"""Free TCP ports on the loopback interface, for local processes and tests."""

from __future__ import annotations

import socket

# Every local process listens here only.
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port the kernel just handed out on the loopback (free now; a later bind can still race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]
