"""The command line of ``make cluster``: start the local cluster (deploy/local/cluster.py),
print where everything is, keep it up until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

import typer

from deploy.local import cluster as cluster_module
from deploy.local.cluster import CLIENT_CHANNEL_OPTIONS, RunningCluster, local_cluster
from deploy.local.postgres import DEFAULT_POSTGRES_ADMIN_URL
from gateway.settings import get_settings

app = typer.Typer(add_completion=False, help=(cluster_module.__doc__ or "").split("\n\n")[0])


@app.command()
def main(
    replicas: int = typer.Option(2, min=1, help="Gateway replicas."),
    postgres_admin_url: str = typer.Option(DEFAULT_POSTGRES_ADMIN_URL, help="PostgreSQL server to create the ledger database on."),
    keep_database: bool = typer.Option(False, help="Keep the ledger database when the cluster stops."),
) -> None:
    """Start the cluster and keep it up until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with local_cluster(
        get_settings(), replicas=replicas, postgres_admin_url=postgres_admin_url, keep_database=keep_database
    ) as cluster:
        print(describe(cluster), flush=True)
        stop.wait()


def describe(cluster: RunningCluster) -> str:
    """Where every process of ``cluster`` answers, and how a client reaches the replicas."""
    return "\n".join(
        [
            "Tollgate cluster is up.",
            *(f"  {r.name}: gRPC {r.address}, metrics http://{r.metrics_address}/metrics" for r in cluster.replicas),
            *(f"  Triton {pool}: gRPC {s.grpc_url}, metrics http://{s.metrics_url}/metrics" for pool, s in cluster.tritons.items()),
            f"  Prometheus: {cluster.prometheus.url}  (try: sum(tollgate_cost_usd_total))",
            f"  ledger: {cluster.ledger_url}",
            f"  logs: {cluster.log_dir}",
            f"Clients: grpc.insecure_channel('{cluster.client_target}', options={list(CLIENT_CHANNEL_OPTIONS)})",
            "Ctrl-C stops everything.",
        ]
    )


if __name__ == "__main__":
    app()
