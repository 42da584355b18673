"""The gateway's hand-encoded OTLP is what OpenTelemetry's own encoder makes of the same spans,
and the recorder exports every span it is given."""

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.lean_spans import SERVER, LeanSpan, SdkExport, SpanRecorder, encode_export_request

RESOURCE = Resource.create({"service.name": "tollgate-gateway"})


class Keep:
    def __init__(self):
        self.spans = []

    def record(self, span):
        self.spans.append(span)


def spans():
    keep = Keep()
    server = LeanSpan(
        keep, "/tollgate.v1.RecommendationService/Recommend", 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x1234, 0xABCD,
        SERVER, {"rpc.system": "grpc", "tollgate.cost.total": 1.25e-6, "tollgate.route.attempts": 1,
                 "tollgate.cache.hit": False, "tollgate.compute_ns": 2**40},
        parent_remote=True, trace_state="vendor=x",
    )  # fmt: skip
    child = LeanSpan(keep, "triton.infer", server.trace_id, 0x5678, server.span_id, attributes={"server.port": 8001})
    child.set_error("UNAVAILABLE")
    child.end()
    server.end()
    return keep.spans


def test_the_otlp_request_is_what_opentelemetry_encodes():
    recorded = spans()
    ours = ExportTraceServiceRequest.FromString(encode_export_request(recorded, dict(RESOURCE.attributes)))
    readable = SdkExport(InMemorySpanExporter(), RESOURCE)._readable
    theirs = encode_spans([readable(span) for span in recorded])
    assert ours == theirs


def test_the_recorder_exports_every_span_in_batches_and_on_shutdown():
    exported = []

    def export(batch):
        exported.append(len(batch))
        return SpanExportResult.SUCCESS

    recorder = SpanRecorder(export, batch_size=4, delay_s=60)
    keep = [LeanSpan(recorder, f"s{i}", 1, i + 1, 0) for i in range(10)]
    for span in keep:
        span.end()
    recorder.shutdown()
    assert sum(exported) == 10 and max(exported) <= 4
