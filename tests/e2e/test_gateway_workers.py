"""Several worker processes on one port: calls spread over them, and no cost record is lost."""

from __future__ import annotations

import re

import grpc
import pytest

from costing.ledger import SqliteLedger
from gateway.api import recommendation_pb2, recommendation_pb2_grpc

pytestmark = pytest.mark.e2e
CALLS_PER_CHANNEL = 30
CHANNELS = 6


def test_two_workers_share_the_port_and_the_ledger_gets_every_record(gateway_factory, buyers):
    gateway = gateway_factory(workers=2, gil_switch_interval_s=0.002)
    request_ids = []
    for index in range(CHANNELS):
        # A channel argument of its own: a connection of its own, which the kernel gives to either worker.
        options = [("grpc.use_local_subchannel_pool", 1), ("tollgate.test.channel", index)]
        with grpc.insecure_channel(gateway.address, options=options) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            for call in range(CALLS_PER_CHANNEL):
                request = recommendation_pb2.RecommendRequest(
                    user_id=buyers[call % len(buyers)], k=3 + index, feature="home_feed"
                )
                response = stub.Recommend(request, timeout=10, metadata=gateway.metadata())
                request_ids.append(response.info.request_id)
    assert gateway.stop() == 0, "the supervisor and its workers stop cleanly (drained, ledgers flushed)"
    ledger = SqliteLedger(gateway.ledger_path)
    recorded = {record.request_id for record in ledger.records()}
    assert recorded == set(request_ids) and len(request_ids) == CHANNELS * CALLS_PER_CHANNEL
    workers_seen = set(re.findall(r"gateway listening on \S+ \(worker (\d+);", gateway.log_path.read_text()))
    assert workers_seen == {"0", "1"}, "both workers served"
    switch_intervals = re.findall(r"gateway listening on .*GIL switch interval (\S+) ms\)", gateway.log_path.read_text())
    assert switch_intervals == ["2", "2"], "each worker hands the GIL back to its event loop every 2 ms, as set"
