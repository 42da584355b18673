"""`make serve`'s banner offers `tollgate call` first (no grpcurl needed), then grpcurl."""

from pathlib import Path

from deploy.local.access import LocalAccess
from deploy.local.serve import banner
from deploy.local.redis import RedisHandle
from deploy.local.stack import RunningStack
from gateway.api_keys import Role


def stack(address: str) -> RunningStack:
    access = LocalAccess(Path("var/serve/access/api-keys.json"), {("shop-uk", Role.CALLER): "tgk_token"}, (), "secret")
    return RunningStack(
        gateway_address=address,
        triton_urls={"cpu-local": "127.0.0.1:8001"},
        redis_url="redis://127.0.0.1:6379/0",
        ledger_path=Path("var/serve/ledger.sqlite"),
        trace_file=Path("var/serve/spans.jsonl"),
        log_dir=Path("var/serve/logs"),
        access=access,
        redis=RedisHandle("redis://127.0.0.1:6379/0"),
        tritons={},
        on_stop=lambda *args: None,
    )


def test_the_banner_offers_tollgate_call_first_then_grpcurl():
    text = banner(stack("127.0.0.1:50051"))
    assert "export TOLLGATE_API_KEY=tgk_token" in text
    call = text.index(".venv/bin/tollgate call recommend --user 17850")
    assert call < text.index("tollgate trace") < text.index("grpcurl")
    assert "--address" not in text, "the default address needs no flag"


def test_another_port_is_named_on_the_command():
    assert "--address 127.0.0.1:50999" in banner(stack("127.0.0.1:50999"))
