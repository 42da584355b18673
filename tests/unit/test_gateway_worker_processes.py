"""Worker processes of one gateway: what each must not share."""

from pathlib import Path

from gateway.settings import Settings
from gateway.workers import worker_environment


def test_each_worker_has_its_own_journal_and_metrics_port_and_only_the_first_reconciles(tmp_path):
    settings = Settings(ledger_path=tmp_path / "ledger.sqlite", metrics_port=9400, workers=3)
    envs = [worker_environment(settings, index) for index in range(3)]
    journals = {env["TOLLGATE_LEDGER_JOURNAL_PATH"] for env in envs}
    assert len(journals) == 3 and all(Path(j).parent == tmp_path for j in journals)
    assert [env["TOLLGATE_METRICS_PORT"] for env in envs] == ["9400", "9401", "9402"]
    assert [env.get("TOLLGATE_RECONCILIATION_ENABLED") for env in envs] == [None, "false", "false"]
    assert all(env["TOLLGATE_WORKERS"] == "1" for env in envs), "a worker starts no workers of its own"


def test_without_a_metrics_port_the_workers_export_nothing(tmp_path):
    env = worker_environment(Settings(ledger_path=tmp_path / "l.sqlite", workers=2), 1)
    assert "TOLLGATE_METRICS_PORT" not in env
