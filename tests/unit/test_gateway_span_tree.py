"""`tollgate trace`: a call's spans are found by trace id or request id, across rotated files,
and printed as a tree with durations and the key attributes."""

from types import SimpleNamespace

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from typer.testing import CliRunner

from gateway import telemetry_attributes as attr
from gateway import trace_cli
from gateway.cli import app
from gateway.span_file import JsonLinesSpanExporter, span_files
from gateway.span_tree import find_spans, render, run_span_files

RPC = "/tollgate.v1.RecommendationService/Recommend"


def make_call(tracer, request_id: str) -> str:
    """The spans the gateway makes for one call; returns its trace id."""
    with tracer.start_as_current_span(RPC) as rpc:
        with tracer.start_as_current_span("cache.lookup", attributes={attr.CACHE_HIT: False}):
            pass
        with tracer.start_as_current_span("triton.infer", attributes={attr.MODEL_NAME: "recommender"}):
            pass
        rpc.set_attributes(
            {
                attr.REQUEST_ID: request_id,
                attr.POOL: "cpu-local",
                attr.MODEL_NAME: "recommender",
                attr.COST_TOTAL: 6.25e-05,
                attr.COST_CURRENCY: "USD",
                "rpc.grpc.status_code": 0,
            }
        )
    return format(rpc.get_span_context().trace_id, "032x")


def span_file_with_calls(path, calls: int, max_bytes: int = 10**9) -> list[tuple[str, str]]:
    """(request id, trace id) of each call written to ``path``."""
    exporter = JsonLinesSpanExporter(path, max_bytes=max_bytes, backups=50)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    made = []
    for index in range(calls):
        request_id = f"{index:032x}"
        made.append((request_id, make_call(tracer, request_id)))
    exporter.shutdown()
    return made


def test_a_call_is_found_by_request_id_or_trace_id_across_rotated_files(tmp_path):
    path = tmp_path / "spans.jsonl"
    calls = span_file_with_calls(path, 20, max_bytes=6000)
    files = span_files(path)
    assert len(files) > 2, "the calls span rotated files"
    for request_id, trace_id in (calls[0], calls[-1]):
        by_request = find_spans(files, request_id)
        by_trace = find_spans(files, "0x" + trace_id)
        assert {s.name for s in by_request} == {RPC, "cache.lookup", "triton.infer"}
        assert {s.span_id for s in by_request} == {s.span_id for s in by_trace}
        assert {s.trace_id for s in by_request} == {trace_id}
    assert find_spans(files, "f" * 32) == []


def test_the_tree_shows_the_rpc_span_its_children_and_their_key_attributes(tmp_path):
    path = tmp_path / "spans.jsonl"
    (request_id, trace_id), = span_file_with_calls(path, 1)
    text = render(find_spans(span_files(path), request_id))
    lines = text.splitlines()
    assert lines[0] == f"trace {trace_id}"
    assert lines[1].startswith(f"{RPC}  ") and " ms" in lines[1]
    for part in ("OK", f"request {request_id}", "pool cpu-local", "model recommender", "cost 6.25e-05 USD"):
        assert part in lines[1]
    assert lines[2].startswith("├── cache.lookup") and "cache miss" in lines[2]
    assert lines[3].startswith("└── triton.infer") and "model recommender" in lines[3]


def test_the_command_searches_the_newest_run_then_older_ones(tmp_path, monkeypatch):
    older, newer = tmp_path / "demo" / "spans.jsonl", tmp_path / "serve" / "spans.jsonl"
    older.parent.mkdir()
    newer.parent.mkdir()
    (old_call,) = span_file_with_calls(older, 1)
    (new_call,) = span_file_with_calls(newer, 1)
    assert [files[-1] for files in run_span_files(tmp_path / "spans.jsonl", tmp_path)] == [newer, older]

    # As with the default settings: TOLLGATE_TRACE_FILE not set, the runs' folder is the default file's.
    defaults = SimpleNamespace(trace_file=tmp_path / "spans.jsonl", model_fields_set=set())
    monkeypatch.setattr(trace_cli, "get_settings", lambda: defaults)
    runner = CliRunner()
    found = runner.invoke(app, ["trace", new_call[0], "--wait", "0"])
    assert found.exit_code == 0, found.output
    assert str(newer) in found.output and RPC in found.output
    assert runner.invoke(app, ["trace", old_call[1], "--wait", "0"]).exit_code == 0
    missing = runner.invoke(app, ["trace", "e" * 32, "--wait", "0"])
    assert missing.exit_code == 1
    assert "No span of" in missing.output


def test_the_command_reads_the_file_it_is_given(tmp_path):
    path = tmp_path / "elsewhere.jsonl"
    (call,) = span_file_with_calls(path, 1)
    result = CliRunner().invoke(app, ["trace", call[1], "--file", str(path), "--wait", "0"])
    assert result.exit_code == 0, result.output
    assert "└── triton.infer" in result.output
