"""``make serve``: keep the real stack up for a client of one's own until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

from rich.console import Console

from deploy.local.stack import RunningStack, local_stack
from gateway.api_keys import Role
from gateway.call_cli import DEFAULT_ADDRESS
from gateway.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    settings = get_settings()
    with local_stack(settings, "serve", fresh_ledger=False, gateway_port=settings.port, reuse_keys=True) as stack:
        Console().print(banner(stack), markup=True, highlight=False, soft_wrap=True)
        stop.wait()


def banner(stack: RunningStack) -> str:
    """Where everything is, and a first call to paste: ``tollgate call`` first, grpcurl second."""
    token = stack.access.tokens[("shop-uk", Role.CALLER)]
    address = "" if stack.gateway_address == DEFAULT_ADDRESS else f" --address {stack.gateway_address}"
    return (
        f"[bold green]Tollgate is up[/bold green] on {stack.gateway_address} "
        f"(Triton pools {stack.triton_urls}, Redis {stack.redis_url}).\n"
        f"Ledger {stack.ledger_path}; spans {stack.trace_file}; logs {stack.log_dir}.\n"
        f"API keys of the local tenants: {stack.access.keys_file.with_name('local-access.json')} "
        "(tenants shop-uk, shop-eu, acme, globex; caller, finance and global-finance keys).\n"
        "Try, in another shell:\n"
        f"  export TOLLGATE_API_KEY={token}\n"
        f"  .venv/bin/tollgate call recommend --user 17850 --k 5 --feature home_feed{address}\n"
        "  .venv/bin/tollgate trace REQUEST_ID      # the call's spans, by the request id it printed\n"
        "  or with grpcurl: grpcurl -plaintext -H \"authorization: Bearer $TOLLGATE_API_KEY\" "
        "-d '{\"user_id\":\"17850\",\"k\":5,\"feature\":\"home_feed\"}' "
        f"{stack.gateway_address} tollgate.v1.RecommendationService/Recommend\n"
        "Ctrl-C stops everything."
    )


if __name__ == "__main__":
    main()
