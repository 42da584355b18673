"""README's first-hour journeys, run as written against a real gateway.

The frontend engineer's: every Python snippet of "Calling Tollgate", pasted in order into one
fresh Python prompt, and every ``tollgate call`` command it shows. The SRE's: a call's ids from
its trailers, then ``tollgate trace`` on the gateway's span file. The README's address
(127.0.0.1:50051) is replaced only through ``TOLLGATE_ADDRESS``, which the snippets and the
command read, and the key comes in ``TOLLGATE_API_KEY``, as README tells the reader to set it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest

from gateway.api import recommendation_pb2, recommendation_pb2_grpc
from gateway.api_keys import Role

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
TOLLGATE = Path(sys.executable).with_name("tollgate")
RECOMMEND_RPC = "/tollgate.v1.RecommendationService/Recommend"
RUN_TIMEOUT_S = 120

# Pastes each snippet into an interactive console line by line, as at the Python prompt (a
# snippet is ended with an empty line, as pressing Enter does), and exits 1 after any error.
PASTE_AT_THE_PROMPT = """
import code, json, sys

class Prompt(code.InteractiveConsole):
    failed = False
    def showtraceback(self):
        Prompt.failed = True
        super().showtraceback()
    def showsyntaxerror(self, filename=None, **kwargs):
        Prompt.failed = True
        super().showsyntaxerror(filename, **kwargs)

prompt = Prompt()
for snippet in json.load(sys.stdin):
    for line in snippet.splitlines() + [""]:
        prompt.push(line)
sys.exit(1 if Prompt.failed else 0)
"""


def calling_tollgate() -> str:
    """The "Calling Tollgate" section of README.md."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Calling Tollgate\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def client_env(gateway, tenant: str = "shop-uk") -> dict[str, str]:
    """The reader's shell after README's ``export TOLLGATE_API_KEY=…``, pointed at the test gateway."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLGATE_")}
    return {**env, "TOLLGATE_API_KEY": gateway.access.tokens[(tenant, Role.CALLER)], "TOLLGATE_ADDRESS": gateway.address}


def test_the_python_snippets_run_as_pasted_in_order(gateway, catalog):
    snippets = code_blocks(calling_tollgate(), "python")
    assert len(snippets) >= 2, "the Recommend and Search snippets"
    result = subprocess.run(
        [sys.executable, "-c", PASTE_AT_THE_PROMPT],
        input=json.dumps(snippets), capture_output=True, text=True, cwd=REPO, env=client_env(gateway),
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    items = [line.split()[0] for line in lines if line.split() and line.split()[0] in catalog]
    assert len(items) == 5 + 10, f"five recommended and ten found items:\n{result.stdout}"
    assert "85123A" not in items[:5] and "20725" not in items[5:], "the excluded items"
    costs = [float(line.split()[-2]) for line in lines if line.endswith(" USD")]
    assert len(costs) == 2 and all(cost > 0 for cost in costs), f"a cost per call:\n{result.stdout}"
    assert any(re.fullmatch(r"[0-9.e-]+", line) and float(line) > 0 for line in lines), "the x-tollgate-cost trailer"


def test_the_tollgate_call_commands_run_as_written(gateway, catalog):
    commands = [
        line.strip()
        for block in code_blocks(calling_tollgate(), "bash")
        for line in block.splitlines()
        if re.match(r"(\.venv/bin/)?tollgate call ", line.strip())
    ]
    assert {shlex.split(command)[2] for command in commands} == {"recommend", "search"}
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, cwd=REPO, env=client_env(gateway),
            timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}: rc {result.returncode}\n{result.stdout}\n{result.stderr}"
        words = shlex.split(command)
        k = int(words[words.index("--k") + 1])
        items = [line.split()[1] for line in result.stdout.splitlines() if line.split()[1:2] and line.split()[1] in catalog]
        assert len(items) == k, f"{command}:\n{result.stdout}"
        assert re.search(r"^cost +[0-9.e-]+ USD", result.stdout, flags=re.MULTILINE), result.stdout
        assert re.search(r"^request id +[0-9a-f]{32}$", result.stdout, flags=re.MULTILINE), result.stdout


def test_a_failed_call_prints_its_status_and_the_cost_it_was_settled_with(gateway):
    result = subprocess.run(
        [str(TOLLGATE), "call", "recommend", "--user", "17850", "--k", "0"],
        capture_output=True, text=True, cwd=REPO, env=client_env(gateway), timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("INVALID_ARGUMENT: k: ")
    assert re.search(r"^cost +[0-9.e-]+ USD$", result.stderr, flags=re.MULTILINE), result.stderr
    assert re.search(r"^request id +[0-9a-f]{32}$", result.stderr, flags=re.MULTILINE), result.stderr


def test_the_sre_goes_from_a_calls_trailers_to_its_spans(gateway):
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        response, call = stub.Recommend.with_call(
            # A shopper nobody asked for yet: a cache miss, so the model runs.
            recommendation_pb2.RecommendRequest(user_id=f"sre-{uuid.uuid4().hex}", k=5, feature="order_confirmation"),
            timeout=5.0,
            metadata=gateway.metadata(),
        )
    trailers = dict(call.trailing_metadata())
    request_id = trailers["x-tollgate-request-id"]
    # The trace id when the gateway sends it, else the request id (on the RPC span).
    call_id = trailers.get("x-tollgate-trace-id") or request_id
    result = subprocess.run(
        [str(TOLLGATE), "trace", call_id, "--file", str(gateway.trace_file), "--wait", "20"],
        capture_output=True, text=True, cwd=REPO, env=client_env(gateway), timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    rpc = [line for line in lines if line.startswith(f"{RECOMMEND_RPC}  ")]
    assert len(rpc) == 1, result.stdout
    cost = response.info.cost
    for part in (" ms  OK", f"request {request_id}", f"cost {cost.total:.3g} {cost.currency}", "model recommender"):
        assert part in rpc[0], f"{part!r} not in {rpc[0]!r}"
    children = lines[lines.index(rpc[0]) + 1 :]
    assert any(line.startswith(("├── cache.lookup", "└── cache.lookup")) for line in children), result.stdout
    assert any("triton.infer" in line and f"pool {response.info.placement.pool}" in line for line in children), result.stdout


def test_finance_runs_the_report_commands_of_costing_readme_as_written(gateway_factory, tmp_path):
    """The finance analyst's journey: a run's ledger under var/<run>/, then every command of
    costing/README.md's "Reports for finance" block, as written, from the repository's layout."""
    text = (REPO / "costing" / "README.md").read_text()
    section = text[text.index("\n## Reports for finance\n") :]
    block = code_blocks(section, "bash")[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith(".venv/bin/tollgate")]
    assert len(commands) >= 5, block
    # The newest run under the repository's var/, as `make demo` leaves it; removed afterwards.
    run_dir = REPO / "var" / f"e2e-finance-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    try:
        _finance_journey(gateway_factory, run_dir, commands, tmp_path)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _finance_journey(gateway_factory, run_dir: Path, commands: list[str], tmp_path: Path) -> None:
    gateway = gateway_factory(ledger_path=run_dir / "ledger.sqlite")
    with grpc.insecure_channel(gateway.address) as channel:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        for n in range(12):
            request = recommendation_pb2.RecommendRequest(user_id=str(12346 + n), k=5, feature="home_feed")
            stub.Recommend(request, timeout=10, metadata=gateway.metadata(("shop-uk", "shop-eu")[n % 2]))
    gateway.stop()
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLGATE_")}
    env["COLUMNS"] = "120"
    month = time.strftime("%Y-%m", time.gmtime())
    for command in commands:
        argv = shlex.split(command.replace("2026-11", month))
        argv[0] = str(Path(sys.executable).with_name("tollgate"))
        result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=RUN_TIMEOUT_S)
        assert result.returncode == 0, f"{command}: rc {result.returncode}\n{result.stdout}\n{result.stderr}"
        shown = result.stdout + result.stderr
        assert not re.search(r"\d\.\d+e-\d\d", shown), f"{command} prints scientific notation:\n{shown}"
        if "--format csv" in command:
            assert result.stdout.splitlines()[0].startswith("row_type,pool"), result.stdout[:200]
        elif "--output" not in command and "report" in command:
            table = [line for line in result.stdout.splitlines() if line[:1] in "┏┃┡│├└"]
            assert "TOTAL" in result.stdout and table, result.stdout
            if "--columns all" not in command:  # asked for every column, the reader gets them all
                assert max(map(len, table)) <= 120, f"{command}: the table is wider than the terminal\n{result.stdout}"
    assert json.loads((tmp_path / "costs.json").read_text())
    assert (tmp_path / "costs.png").stat().st_size > 0
