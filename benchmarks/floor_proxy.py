"""The floor of what a Python gRPC gateway can cost: a minimal grpc.aio proxy that forwards the
bytes of every unary call to Triton unchanged (no parsing, no metadata, no logic).

Goal 1 divides the gateway's CPU per request by this proxy's, measured in the same run: what
is left above 1 is the gateway's own tax (authentication, validation, routing, cost, cache,
tracing), not the price of two gRPC hops in Python. Clients talk to it with Triton's own
protocol (``triton.recommender`` pointed at its address). It runs on the same event loop as
the gateway (uvloop), so the comparison is loop for loop.

    python -m benchmarks.floor_proxy --port 9100 --target 127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc
import uvloop

# Triton answers big tensors: lift gRPC's 4 MB default like tritonclient does.
MAX_MESSAGE_BYTES = 2**31 - 1
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class ForwardingHandler(grpc.GenericRpcHandler):
    """Every method, unary-unary, forwarded as bytes over one channel to ``target``."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._methods: dict[str, Any] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        handler = self._methods.get(method)
        if handler is None:
            forward = self._channel.unary_unary(method)  # no serializers: bytes in, bytes out

            async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                return await forward(request, timeout=context.time_remaining())

            handler = self._methods[method] = grpc.unary_unary_rpc_method_handler(call)
        return handler


async def serve(port: int, target: str, ready: asyncio.Event | None = None) -> None:
    channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    server.add_generic_rpc_handlers((ForwardingHandler(channel),))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"floor proxy on 127.0.0.1:{port} -> {target}", flush=True)
    await stop.wait()
    await server.stop(1.0)
    await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="Triton's gRPC address, host:port")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.target))


if __name__ == "__main__":
    main()
