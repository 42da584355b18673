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

from gateway.answers import ModelAnswer, RankedItem
from gateway.circuit_breaker import CircuitBreaker
from gateway.redis_pipe import RedisPipe
from gateway.result_cache import CachedAnswer, CacheSecret, ResultCache
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


class Replies:
    """Collects what ``set_later`` reports per reply; ``wait(n)`` returns once n were reported."""

    def __init__(self) -> None:
        self.got: list[Exception | None] = []
        self._changed = asyncio.Event()

    def __call__(self, error: Exception | None) -> None:
        self.got.append(error)
        self._changed.set()

    async def wait(self, count: int) -> list[Exception | None]:
        async with asyncio.timeout(10):
            while len(self.got) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.got


def test_stores_nobody_awaits_land_and_every_reply_is_reported(tmp_path):
    """set_later: the SET is written with the iteration's other commands, no caller waits, and
    each reply reaches the callback: OK, a refusal by Redis (an ACL that forbids the key), and
    the loss of the connection."""
    server, port = _start_on_a_free_port(
        tmp_path, "--port", "--user", "default", "off", "--user", "tollgate", "on", ">pw",
        "~tollgate-test:*", "+@all",
    )  # fmt: skip
    url = f"redis://tollgate:pw@127.0.0.1:{port}/0"
    try:
        _wait(url)

        async def scenario():
            pipe = RedisPipe(url, 2.0)
            replies = Replies()
            assert not pipe.set_later([("tollgate-test:early", b"x")], 30, replies), "not connected yet: not sent"
            assert await pipe.get("tollgate-test:stored") is None
            assert pipe.set_later([("tollgate-test:stored", b"v1"), ("tollgate-test:other", b"v2")], 30, replies)
            assert pipe.set_later([("forbidden:key", b"v")], 30, replies)
            got = await replies.wait(3)
            assert got[:2] == [None, None]
            assert isinstance(got[2], redis.ResponseError) and "NOPERM" in str(got[2])
            assert await pipe.mget(["tollgate-test:stored", "tollgate-test:other"]) == [b"v1", b"v2"]
            assert 0 < redis.Redis.from_url(url).ttl("tollgate-test:stored") <= 30
            await pipe.aclose()

            cache_pipe = RedisPipe(url, 2.0)
            breaker = CircuitBreaker(1, 60.0)
            cache = ResultCache(cache_pipe, 30, 2.0, CacheSecret(b"0123456789abcdef-test"), ["cpu-local"], breaker)
            answer = CachedAnswer(ModelAnswer.of((RankedItem("85123A", "HEART", 0.5),), 4_000, "1"), "cpu-local")
            assert await cache.get("tollgate-test:answer") is None  # connects
            assert cache.put_later("tollgate-test:answer", answer)
            async with asyncio.timeout(10):
                while (found := await cache.get("tollgate-test:answer")) is None:
                    await asyncio.sleep(0.01)
            assert found == answer and breaker.allow()
            assert cache.put_later("forbidden:answer", answer)
            async with asyncio.timeout(10):
                while breaker.allow():
                    await asyncio.sleep(0.01)  # the refused store is counted: a breaker of 1 failure opens

            lost = RedisPipe(url, 2.0)
            await lost.get("tollgate-test:stored")
            server.terminate()
            server.wait()
            lost_replies = Replies()
            # The SET goes out (or the loss is already known and nothing is sent): either way no
            # store is left unreported.
            if lost.set_later([("tollgate-test:late", b"v")], 30, lost_replies):
                (error,) = await lost_replies.wait(1)
                assert isinstance(error, redis.ConnectionError)
            else:
                assert lost_replies.got == []

        asyncio.run(scenario())
    finally:
        if server.poll() is None:
            server.terminate()


def test_lookups_past_the_reply_timeout_fail_and_later_replies_stay_in_order(tmp_path):
    """With a reply timeout, the GETs of one write share one timer: while Redis is paused
    (CLIENT PAUSE) they fail with TimeoutError after it, and once Redis answers again the late
    replies are dropped and every new GET gets its own key's value."""
    server, port = _start_on_a_free_port(tmp_path, "--port")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait(url)
        admin = redis.Redis.from_url(url)
        admin.mset({"tollgate-test:a": b"A", "tollgate-test:b": b"B"})

        async def scenario():
            pipe = RedisPipe(url, 2.0, reply_timeout_s=0.1)
            assert await pipe.get("tollgate-test:a") == b"A"
            await asyncio.to_thread(admin.execute_command, "CLIENT", "PAUSE", "1000", "ALL")
            loop = asyncio.get_running_loop()
            started = loop.time()
            outcomes = await asyncio.gather(
                pipe.get("tollgate-test:a"), pipe.get("tollgate-test:b"), return_exceptions=True
            )
            assert [type(outcome) for outcome in outcomes] == [TimeoutError, TimeoutError]
            assert loop.time() - started < 0.9, "cut at the reply timeout, not when Redis answered"
            await asyncio.to_thread(admin.execute_command, "CLIENT", "UNPAUSE")
            got = await asyncio.gather(pipe.get("tollgate-test:b"), pipe.get("tollgate-test:a"), pipe.get("nope"))
            assert got == [b"B", b"A", None], "the two late replies were dropped, not handed to these"
            await pipe.aclose()

        asyncio.run(scenario())
        admin.close()
    finally:
        server.terminate()
        server.wait()
