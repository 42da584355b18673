"""The cache's Redis client against a real redis-server: plain, and as production runs it (TLS
verified against the CA, an ACL user with a password, another database); a server that goes
away fails the waiting commands and the next command connects again."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
import redis
import trustme

from gateway.redis_pipe import RedisPipe
from tests.support import port_for_later_bind, retry_on_port_collision, wait_for

pytestmark = pytest.mark.e2e


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log_path = tmp_path / "redis.log"
    log_path.unlink(missing_ok=True)
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path), *args],
            stdout=log, stderr=log,
        )  # fmt: skip
    # Ours is listening once it says so; one that exits instead says why (a port taken is retried).
    wait_for(lambda: server.poll() is not None or "Ready to accept connections" in log_path.read_text(), 10, "redis-server")
    if server.poll() is not None:
        raise OSError(f"redis-server exited: {log_path.read_text()[-500:]}")
    return server


def _start_on_a_free_port(tmp_path: Path, port_option: str, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    def start() -> tuple[subprocess.Popen[bytes], int]:
        port = port_for_later_bind()
        return _start(tmp_path, port_option, str(port), *args), port

    return retry_on_port_collision(start)


def _wait(url: str, **kwargs: object) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=1, **kwargs).ping()
            return
        except redis.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


async def _round_trip(pipe: RedisPipe) -> list[bytes | None]:
    await pipe.set_many([("tollgate-test:a", b"1"), ("tollgate-test:b", b"\x00\xff" * 600)], ttl_s=30)
    single = await pipe.mget(["tollgate-test:a"])
    many = await pipe.mget(["tollgate-test:a", "tollgate-test:missing", "tollgate-test:b"])
    together = await asyncio.gather(pipe.get("tollgate-test:a"), pipe.get("tollgate-test:missing"))
    assert together == [b"1", None]
    return [*single, *many]


def test_plain_redis_and_a_server_that_comes_back(tmp_path):
    server, port = _start_on_a_free_port(tmp_path, "--port")
    url = f"redis://127.0.0.1:{port}/3"
    try:
        _wait(url)

        async def scenario():
            pipe = RedisPipe(url, 1.0)
            assert await _round_trip(pipe) == [b"1", b"1", None, b"\x00\xff" * 600]
            server.terminate()
            server.wait()
            with pytest.raises(redis.RedisError):
                await pipe.mget(["tollgate-test:a"])
            restarted = _start(tmp_path, "--port", str(port))
            try:
                await asyncio.to_thread(_wait, url)
                assert await _round_trip(pipe) == [b"1", b"1", None, b"\x00\xff" * 600], "connects again"
            finally:
                restarted.terminate()
                restarted.wait()
            await pipe.aclose()

        asyncio.run(scenario())
    finally:
        if server.poll() is None:
            server.terminate()


def test_tls_with_an_acl_user_as_in_production(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(tmp_path / "ca.crt")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "server.crt")
    cert.private_key_pem.write_to_path(tmp_path / "server.key")
    server, port = _start_on_a_free_port(
        tmp_path, "--tls-port", "--port", "0", "--tls-cert-file", str(tmp_path / "server.crt"),
        "--tls-key-file", str(tmp_path / "server.key"), "--tls-ca-cert-file", str(tmp_path / "ca.crt"),
        "--tls-auth-clients", "no", "--user", "default", "off", "--user", "tollgate", "on", ">secret-pw",
        "~tollgate-test:*", "+@all",
    )  # fmt: skip
    url = f"rediss://tollgate:secret-pw@localhost:{port}/0?ssl_ca_certs={tmp_path}/ca.crt"
    try:
        _wait(url)
        assert asyncio.run(_round_trip(RedisPipe(url, 2.0))) == [b"1", b"1", None, b"\x00\xff" * 600]
        with pytest.raises(redis.RedisError):
            asyncio.run(RedisPipe(url.replace("secret-pw", "wrong"), 2.0).mget(["tollgate-test:a"]))
        with pytest.raises(redis.RedisError):  # a certificate no CA of ours signed
            asyncio.run(RedisPipe(f"rediss://tollgate:secret-pw@localhost:{port}/0", 2.0).mget(["tollgate-test:a"]))
    finally:
        server.terminate()
        server.wait()
