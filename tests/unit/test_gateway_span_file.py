"""The local span file rotates, keeps a bounded number of rotated files, and loses no span."""

import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway.span_file import JsonLinesSpanExporter, span_files


def write_spans(exporter: JsonLinesSpanExporter, count: int) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for index in range(count):
        with tracer.start_as_current_span(f"span-{index}", attributes={"padding": "x" * 200}):
            pass


def names(path) -> list[str]:
    return [json.loads(line)["name"] for line in path.read_text().splitlines()]


def test_the_file_rotates_at_its_size_and_keeps_only_its_backups(tmp_path):
    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesSpanExporter(path, max_bytes=4000, backups=2)
    write_spans(exporter, 200)
    exporter.shutdown()

    files = span_files(path)
    assert [f.name for f in files] == ["spans.jsonl.2", "spans.jsonl.1", "spans.jsonl"], "oldest first"
    assert not (tmp_path / "spans.jsonl.3").exists()
    assert all(f.stat().st_size <= 4000 for f in files)
    kept = [name for f in files for name in names(f)]
    assert kept == [f"span-{i}" for i in range(200 - len(kept), 200)], "the newest spans, in order, none lost between files"
    assert sum(f.stat().st_size for f in files) <= 3 * 4000


def test_without_backups_the_file_starts_afresh(tmp_path):
    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesSpanExporter(path, max_bytes=4000, backups=0)
    write_spans(exporter, 100)
    exporter.shutdown()
    assert span_files(path) == [path]
    assert 0 < path.stat().st_size <= 4000
    assert names(path)[-1] == "span-99"


def test_a_restarted_gateway_appends_and_counts_what_is_there(tmp_path):
    path = tmp_path / "spans.jsonl"
    first = JsonLinesSpanExporter(path, max_bytes=4000, backups=1)
    write_spans(first, 5)
    first.shutdown()
    size = path.stat().st_size
    second = JsonLinesSpanExporter(path, max_bytes=4000, backups=1)
    write_spans(second, 30)
    second.shutdown()
    assert path.stat().st_size <= 4000
    assert (tmp_path / "spans.jsonl.1").stat().st_size >= size, "the earlier spans went into the rotated file"
