"""Steady Recommend load for the rollout tests: calls at a fixed rate (open loop, so a slow
answer never slows the rate), from a thread with its own event loop, until stopped. Every call
is kept with when it started and ended, its status and the version that answered."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from gateway.api import recommendation_pb2, recommendation_pb2_grpc

# Calls in flight above which the generator counts a call as not sent (the gateway is stuck):
# far above what the rate needs (rate x latency, a handful at these rates).
MAX_IN_FLIGHT = 256


@dataclass(frozen=True)
class Call:
    started: float  # time.monotonic()
    ended: float
    status: str  # gRPC status name
    version: str  # model version of the answer ("" on failures)
    build_id: str
    request_id: str
    cache_hit: bool


class SteadyLoad:
    def __init__(
        self, address: str, metadata: Sequence[tuple[str, str]], users: Sequence[str], rate_per_s: float,
        feature: str, deadline_s: float, seed: int = 18,
    ) -> None:
        self._address = address
        self._metadata = tuple(metadata)
        self._users = list(users)
        self._interval_s = 1.0 / rate_per_s
        self._feature = feature
        self._deadline_s = deadline_s
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self.not_sent = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="rollout-load", daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def stop(self) -> list[Call]:
        """Stops sending, waits for the calls in flight, returns every call."""
        self._stop.set()
        self._thread.join()
        return self.calls

    def completed(self) -> int:
        with self._lock:
            return len(self.calls)

    def completed_since(self, moment: float) -> int:
        """Calls started at or after ``moment`` that have ended."""
        with self._lock:
            return sum(call.started >= moment for call in self.calls)

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(self._address) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            in_flight: set[asyncio.Task[None]] = set()
            next_call = time.monotonic()
            while not self._stop.is_set():
                if len(in_flight) >= MAX_IN_FLIGHT:
                    self.not_sent += 1
                else:
                    request = recommendation_pb2.RecommendRequest(
                        user_id=self._random.choice(self._users), k=self._random.randint(5, 10), feature=self._feature
                    )
                    task = asyncio.create_task(self._call(stub, request))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                next_call += self._interval_s
                await asyncio.sleep(max(0.0, next_call - time.monotonic()))
            if in_flight:
                await asyncio.gather(*in_flight)

    async def _call(self, stub: recommendation_pb2_grpc.RecommendationServiceStub, request: object) -> None:
        started = time.monotonic()
        try:
            response = await stub.Recommend(request, timeout=self._deadline_s, metadata=self._metadata)
            info = response.info
            call = Call(started, time.monotonic(), "OK", info.model.version, info.model.build_id, info.request_id, info.cache_hit)
        except grpc.aio.AioRpcError as error:
            call = Call(started, time.monotonic(), error.code().name, "", "", "", False)
        with self._lock:
            self.calls.append(call)
