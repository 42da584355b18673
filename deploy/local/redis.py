"""Makes sure a Redis answers on the configured address, starting a private one if none does."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import redis

log = logging.getLogger(__name__)

INSTALL_SCRIPT = Path(__file__).with_name("install-redis.sh")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s).ping())
    except (redis.RedisError, OSError):
        return False


@dataclass
class RedisHandle:
    """A Redis that answers on ``url``; ``process`` is set only when we started it."""

    url: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def ensure_redis(url: str, log_dir: Path, start_timeout_s: float = 10.0) -> RedisHandle:
    """Returns at once if Redis answers on ``url``; otherwise installs (Debian's redis-server)
    and starts one on that loopback port, keeping nothing on disk."""
    if redis_answers(url):
        return RedisHandle(url)
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if host not in LOOPBACK_HOSTS:
        raise RuntimeError(f"Redis at {url} does not answer, and it is not on this machine to start")
    binary = shutil.which("redis-server")
    if binary is None:
        log.info("no redis-server on PATH; installing Debian's package")
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is still missing after installing it")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = (log_dir / f"redis-{port}.log").open("ab")
    process = subprocess.Popen(
        [binary, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if redis_answers(url):
            log.info("started redis-server on %s:%d (pid %d)", host, port, process.pid)
            return RedisHandle(url, process)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"redis-server did not come up on {host}:{port}; see {log_dir}")


# Keys deleted per DEL command when a run cleans up its own cache keys.
DELETE_BATCH = 500


def delete_prefixed(url: str, prefix: str) -> int:
    """Deletes the keys under ``prefix`` (a run's own: never anybody else's) and returns how
    many. ``prefix`` must name a run, not be a bare namespace."""
    if not prefix.rstrip(":") or ":" not in prefix.rstrip(":"):
        raise ValueError(f"refusing to delete keys under the broad prefix {prefix!r}")
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=DELETE_BATCH):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted
