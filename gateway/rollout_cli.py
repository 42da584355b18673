"""``tollgate models status|shadow|canary|promote|rollback``: a model's rollout, through the
gateway's tollgate.v1.ModelRollout service (an operator key; the same operations as over gRPC).

Prints the rollout after the operation. A refused one prints its gRPC status and message to
stderr and exits 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import grpc
import typer

from gateway.api import rollout_pb2, rollout_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"

Model = Annotated[str, typer.Argument(help="Triton model, e.g. recommender.")]
Address = Annotated[
    str, typer.Option("--address", envvar="TOLLGATE_ADDRESS", help="The gateway's host:port (plaintext gRPC).")
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key", envvar="TOLLGATE_API_KEY", show_default=False, help="An operator's API key (default: $TOLLGATE_API_KEY)."
    ),
]
# Loading a version in Triton takes seconds; promote and roll back also wait for the drain.
Deadline = Annotated[float, typer.Option("--deadline", min=0.001, help="Deadline of the call, in seconds.")]
Share = Annotated[float, typer.Option("--share", help="Share of calls, from 0 to 1 (e.g. 0.1 for 10 %).")]
Candidate = Annotated[
    str, typer.Option("--candidate", help="Candidate version (default: the loaded version other than the serving one).")
]
Method = Callable[[rollout_pb2_grpc.ModelRolloutStub], Callable[..., rollout_pb2.RolloutStatus]]
DEFAULT_DEADLINE_S = 120.0


def status(model: Model, address: Address = DEFAULT_ADDRESS, key: Key = None, deadline: Deadline = 10.0) -> None:
    """The rollout of a model: serving and candidate versions, mode, share, the candidate's window."""
    _call(address, key, deadline, lambda stub: stub.Status, rollout_pb2.RolloutRequest(model=model))


def shadow(
    model: Model, share: Share, candidate: Candidate = "", address: Address = DEFAULT_ADDRESS, key: Key = None,
    deadline: Deadline = DEFAULT_DEADLINE_S,
) -> None:
    """Mirror a share of calls to the candidate (callers keep the serving answers)."""
    request = rollout_pb2.StartRolloutRequest(model=model, candidate=candidate, share=share)
    _call(address, key, deadline, lambda stub: stub.Shadow, request)


def canary(
    model: Model, share: Share, candidate: Candidate = "", address: Address = DEFAULT_ADDRESS, key: Key = None,
    deadline: Deadline = DEFAULT_DEADLINE_S,
) -> None:
    """Answer a share of calls with the candidate."""
    request = rollout_pb2.StartRolloutRequest(model=model, candidate=candidate, share=share)
    _call(address, key, deadline, lambda stub: stub.Canary, request)


def promote(model: Model, address: Address = DEFAULT_ADDRESS, key: Key = None, deadline: Deadline = DEFAULT_DEADLINE_S) -> None:
    """The candidate becomes the serving version; the previous one is unloaded."""
    _call(address, key, deadline, lambda stub: stub.Promote, rollout_pb2.RolloutRequest(model=model))


def rollback(model: Model, address: Address = DEFAULT_ADDRESS, key: Key = None, deadline: Deadline = DEFAULT_DEADLINE_S) -> None:
    """All calls back to the serving version; the candidate is unloaded."""
    _call(address, key, deadline, lambda stub: stub.Rollback, rollout_pb2.RolloutRequest(model=model))


def register_rollout_commands(app: typer.Typer) -> None:
    for command in (status, shadow, canary, promote, rollback):
        app.command()(command)


def describe(reply: rollout_pb2.RolloutStatus) -> str:
    """The rollout as printed, one fact per line."""
    lines = [f"model      {reply.model}", f"serving    version {reply.serving_version}"]
    if reply.mode != "none":
        lines.append(f"candidate  version {reply.candidate_version}: {reply.mode} {reply.share:.1%}")
        lines.append(
            f"window     {reply.window_calls} candidate calls, {reply.window_errors} errors, p99 {reply.window_p99_ms:.1f} ms"
        )
        if reply.mode == "shadow":
            lines.append(
                f"shadow     {reply.shadow_compared} answers compared, mean overlap {reply.shadow_mean_overlap:.3f}, "
                f"{reply.shadow_skipped} skipped"
            )
    else:
        lines.append("candidate  none")
    lines += [
        f"loaded     {v.version} (build {v.build_id or '?'}, {'ready' if v.ready else 'NOT ready'})" for v in reply.versions
    ]
    lines += [f"revision   {reply.revision}", f"last       {reply.note or '-'}"]
    return "\n".join(lines)


def _call(address: str, key: str | None, deadline: float, method: Method, request: object) -> None:
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    with grpc.insecure_channel(address) as channel:
        try:
            reply = method(rollout_pb2_grpc.ModelRolloutStub(channel))(request, timeout=deadline, metadata=metadata)
        except grpc.RpcError as error:
            typer.echo(f"{error.code().name}: {error.details()}", err=True)
            raise typer.Exit(1) from None
    typer.echo(describe(reply))
