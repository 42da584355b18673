"""``tollgate trace ID``: a call's spans from the local span files, printed as a tree.

ID is the call's trace id (trailer ``x-tollgate-trace-id``) or its request id (trailer
``x-tollgate-request-id``). The files are those of ``trace_exporter=file`` (what ``make serve``
and ``make demo`` write): by default ``TOLLGATE_TRACE_FILE`` when it is set, else the newest
run's ``spans.jsonl`` under ``var/`` (older runs are searched next), each with its rotated files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from gateway.settings import get_settings
from gateway.span_tree import find_spans, render, run_span_files

POLL_S = 0.5


def trace(
    call_id: Annotated[str, typer.Argument(metavar="ID", help="The call's trace id or request id (from its trailers).")],
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Span file to search, with its rotated files (default: the newest run's under var/)."),
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for spans not written yet (they are written in batches).")
    ] = 6.0,
    show_all: Annotated[bool, typer.Option("--all", help="Print every attribute of every span.")] = False,
) -> None:
    """Print a call's spans as a tree, with durations, cost, pool and model."""
    settings = get_settings()
    if file is not None:
        trace_file, search_root = file, None
    elif "trace_file" in settings.model_fields_set:
        trace_file, search_root = settings.trace_file, None
    else:
        trace_file, search_root = settings.trace_file, settings.trace_file.parent
    give_up_at = time.monotonic() + wait
    while True:
        runs = run_span_files(trace_file, search_root)
        for files in runs:
            spans = find_spans(files, call_id)
            if spans:
                typer.echo(f"spans from {', '.join(str(path) for path in files)}")
                typer.echo(render(spans, show_all))
                return
        if time.monotonic() >= give_up_at:
            break
        time.sleep(POLL_S)
    searched = [str(path) for files in runs for path in files]
    if searched:
        typer.echo(f"No span of {call_id} in {', '.join(searched)}.", err=True)
    else:
        where = f"named {trace_file.name} under {search_root}" if search_root else f"at {trace_file}"
        typer.echo(f"No span file {where}.", err=True)
    typer.echo(
        "The gateway writes spans to a file with TOLLGATE_TRACE_EXPORTER=file (make serve, make demo); "
        "with OTLP, search your tracing backend (gateway/README.md#finding-a-calls-trace).",
        err=True,
    )
    raise typer.Exit(1)
