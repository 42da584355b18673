"""A lean Redis client for the cache's hot path: one connection, commands pipelined in order,
replies parsed by hiredis (C).

redis-py's asyncio client spent ~40 µs of Python per command here (a connection taken from and
returned to its pool, command packing, stream reads, response callbacks). The cache only needs
GET and SET with a TTL: the commands made during one event-loop iteration go out in one write
on one connection and their replies, read together, are matched in order, so under load many
lookups cost one round trip, as one MGET would, and each caller waits on its own reply. The URL
is read as redis-py reads it (``redis://`` or ``rediss://``, user, password, database,
``ssl_ca_certs``/``ssl_certfile``/``ssl_keyfile``/``ssl_cert_reqs``/``ssl_check_hostname``). A
connection that fails fails its waiting commands (the cache counts them as misses) and the next
command connects again.

With a ``reply_timeout_s``, the lookups of one write share one timer: those still unanswered
when it fires fail with TimeoutError (their late replies are dropped in order), so a lookup
under a time budget costs no timer of its own (``asyncio.timeout`` per lookup was about half of
a lookup's CPU under load).

A cache store needs no caller to wait for its reply: ``set_later`` adds its SET to the current
iteration's write and registers a callback in the reply queue instead of a future, so a store
costs no future, task or timer (a reply that never comes costs nothing but its place in the
queue; a lost connection reports it to the callback).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Reply = Any
# Told how one unawaited command ended: None when Redis answered it, else the error.
ReplyCallback = Callable[[Exception | None], object]


def encode_command(*args: bytes | str | int) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    def __init__(self, reply_timeout_s: float | None = None) -> None:
        """``reply_timeout_s``: how long the timed commands of one write wait for their replies."""
        self._reply_timeout_s = reply_timeout_s
        self._timed: list[asyncio.Future[Reply]] = []  # timed futures of the write being gathered
        self._reader = hiredis.Reader()
        # In the order the commands were written: a future per awaited reply, a callback per unawaited one.
        self._waiting: collections.deque[asyncio.Future[Reply] | ReplyCallback] = collections.deque()
        self._unsent: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, payload: bytes, replies: int, timed: bool = False) -> list[asyncio.Future[Reply]]:
        """Queues ``payload`` for this loop iteration's single write; one future per reply.
        ``timed``: the futures fail with TimeoutError after the connection's reply timeout."""
        if self.transport is None or self.lost is not None:
            raise RedisConnectionError("the Redis connection is closed")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(replies)]
        self._waiting.extend(futures)
        if timed and self._reply_timeout_s is not None:
            self._timed.extend(futures)
        if not self._unsent:
            loop.call_soon(self._write)
        self._unsent.append(payload)
        return futures

    def send_unawaited(self, payload: bytes, replies: int, on_reply: ReplyCallback) -> None:
        """Queues ``payload`` like :meth:`send`; each of its replies goes to ``on_reply``."""
        if self.transport is None or self.lost is not None:
            raise RedisConnectionError("the Redis connection is closed")
        self._waiting.extend([on_reply] * replies)
        if not self._unsent:
            asyncio.get_running_loop().call_soon(self._write)
        self._unsent.append(payload)

    def _write(self) -> None:
        payload, self._unsent = b"".join(self._unsent), []
        if self._timed:
            timed, self._timed = self._timed, []
            assert self._reply_timeout_s is not None
            asyncio.get_running_loop().call_later(self._reply_timeout_s, _expire, timed)
        if self.transport is not None and self.lost is None:
            self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self._waiting.popleft()
            if not isinstance(waiter, asyncio.Future):
                waiter(ResponseError(str(reply)) if isinstance(reply, hiredis.ReplyError) else None)
            elif waiter.done():  # its caller gave up (time budget): the reply is dropped
                continue
            elif isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(ResponseError(str(reply)))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or RedisConnectionError("the Redis server closed the connection")
        while self._waiting:
            waiter = self._waiting.popleft()
            error = RedisConnectionError(f"the Redis connection was lost: {self.lost}")
            if not isinstance(waiter, asyncio.Future):
                waiter(error)
            elif not waiter.done():
                waiter.set_exception(error)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(futures: list[asyncio.Future[Reply]]) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(TimeoutError("Redis did not answer within the reply timeout"))


class RedisPipe:
    """MGET/GET/SET over one pipelined connection (see the module docstring)."""

    def __init__(self, url: str, connect_timeout_s: float, reply_timeout_s: float | None = None) -> None:
        """``reply_timeout_s``: GET and MGET raise TimeoutError when Redis has not answered
        within it (None: they wait; bound them yourself)."""
        options = parse_url(url)
        self._host = options.get("host") or "127.0.0.1"
        self._port = int(options.get("port") or 6379)
        self._db = int(options.get("db") or 0)
        self._username = options.get("username")
        self._password = options.get("password")
        self._ssl = _ssl_context(options) if options.get("connection_class") is SSLConnection else None
        self._connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    async def get(self, key: str) -> bytes | None:
        """GET, written with the other commands of this loop iteration (one write, one read)."""
        return await self._one(encode_command(b"GET", key))

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if len(keys) == 1:
            return [await self._one(encode_command(b"GET", keys[0]))]
        return list(await self._one(encode_command(b"MGET", *keys)))

    async def set_many(self, entries: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        """SET key value EX ttl for every entry, pipelined in one write."""
        payload = b"".join(encode_command(b"SET", key, value, b"EX", ttl_s) for key, value in entries)
        connection = await self._ready()
        await asyncio.gather(*connection.send(payload, len(entries)))

    def set_later(self, entries: Sequence[tuple[str, bytes]], ttl_s: int, on_reply: ReplyCallback) -> bool:
        """SET key value EX ttl for every entry, written with this loop iteration's other
        commands; nobody waits: each reply (or the connection's loss) goes to ``on_reply``.
        False, and nothing sent, while no connection is open (use :meth:`set_many`)."""
        connection = self._connection
        if connection is None or connection.lost is not None:
            return False
        payload = b"".join(encode_command(b"SET", key, value, b"EX", ttl_s) for key, value in entries)
        connection.send_unawaited(payload, len(entries), on_reply)
        return True

    async def _one(self, payload: bytes) -> Reply:
        connection = await self._ready()
        return await connection.send(payload, 1, timed=True)[0]

    async def _ready(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.lost is None:
            return connection
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is None or self._connection.lost is not None:
                self._connection = await self._connect()
            return self._connection

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self.reply_timeout_s), self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )  # fmt: skip
                try:
                    await self._set_up(connection)
                except BaseException:
                    connection.close()
                    raise
        except OSError as error:
            raise RedisConnectionError(f"cannot connect to Redis at {self._host}:{self._port}: {error}") from error
        return connection

    async def _set_up(self, connection: _Connection) -> None:
        """AUTH (user and password, as Redis ACLs have them) and SELECT, before any command."""
        setup = []
        if self._password is not None:
            auth = (b"AUTH", self._username, self._password) if self._username else (b"AUTH", self._password)
            setup.append(encode_command(*auth))
        if self._db:
            setup.append(encode_command(b"SELECT", self._db))
        if setup:
            await asyncio.gather(*connection.send(b"".join(setup), len(setup)))

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    """TLS as redis-py's ``rediss://`` options describe it: the server's certificate verified
    against ``ssl_ca_certs`` (or the system's CAs), its host name checked, an optional client
    certificate."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    requirement = str(options.get("ssl_cert_reqs", "required")).lower()
    check_hostname = str(options.get("ssl_check_hostname", "true")).lower() not in ("false", "0", "no")
    if requirement in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = check_hostname
    return context
