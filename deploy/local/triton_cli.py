"""``python -m deploy.local.triton_cli``: run tritonserver in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import typer

from deploy.local.settings import get_local_settings
from deploy.local.triton import TritonServer
from gateway.settings import get_settings

log = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, help="Run tritonserver in the foreground until Ctrl-C (or SIGTERM).")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def run(
    model_repository: Path = typer.Option(None, help="Triton model repository; default: the local stack's model_repository."),
    grpc_port: int = typer.Option(None, help="gRPC port (0 = any free port); default: port of the gateway's triton_url."),
    http_port: int = typer.Option(8000, help="HTTP port (0 = any free port)."),
    metrics_port: int = typer.Option(8002, help="Metrics port (0 = any free port)."),
    log_path: Path = typer.Option(None, help="Server log file; default: run_dir/logs/triton-GRPC_PORT.log."),
    model: list[str] = typer.Option(None, help="Load only this model (repeatable); default: every model."),
    ready_timeout_s: float = typer.Option(120.0, help="How long to wait for the server and its models."),
) -> None:
    """Run tritonserver in the foreground until Ctrl-C (or SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if grpc_port is None:  # where the gateway looks for Triton by default
        grpc_port = int(get_settings().triton_url.rsplit(":", 1)[1])
    server = TritonServer(
        model_repository or get_local_settings().model_repository,
        grpc_port=grpc_port or None,
        http_port=http_port or None,
        metrics_port=metrics_port or None,
        log_path=log_path,
        models=model or None,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with server.start(ready_timeout_s):
        log.info(
            "grpc %s  http %s  metrics %s  log %s", server.grpc_url, server.http_url, server.metrics_url, server.log_path
        )
        try:
            while server.is_running():
                time.sleep(0.5)
            server.kill()
            log.error("tritonserver exited on its own (rc %s)\n%s", server.returncode, server.log_tail())
            raise typer.Exit(1)
        except KeyboardInterrupt:
            log.info("stopping tritonserver")


if __name__ == "__main__":
    app()
