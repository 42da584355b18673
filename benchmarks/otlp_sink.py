"""An OTLP/gRPC trace receiver for the benchmark: takes every export and keeps only counts.

The gateway's spans really leave it over OTLP (serialised, sent, acknowledged), as they would to
an OpenTelemetry Collector, while the receiver itself spends as little as possible of the
shared cores (it does not parse what it receives).

    python -m benchmarks.otlp_sink --port 4317     # prints "exports <n> bytes <b>" on SIGTERM
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Sink(grpc.GenericRpcHandler):
    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._handler = grpc.unary_unary_rpc_method_handler(self._export)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handler if handler_call_details.method == EXPORT else None

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.exports += 1
            self.bytes += len(request)
        return b""  # an empty ExportTraceServiceResponse: everything accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sink = Sink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((sink,))
    if server.add_insecure_port(f"127.0.0.1:{args.port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{args.port}")
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"otlp sink on 127.0.0.1:{args.port}", flush=True)
    done.wait()
    server.stop(1.0)
    print(f"exports {sink.exports} bytes {sink.bytes}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
