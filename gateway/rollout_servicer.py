"""gRPC servicer of tollgate.v1.ModelRollout: status, shadow, canary, promote and roll back of a
model's candidate version (gateway/rollout.py), for operators only.

Errors are the rollout's own (gateway/errors.py): NOT_FOUND, FAILED_PRECONDITION,
INVALID_ARGUMENT naming the field, UNAVAILABLE; PERMISSION_DENIED for a key that is not an
operator's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from gateway.api import rollout_pb2
from gateway.api_keys import Role
from gateway.errors import InvalidArgument, RequestError
from gateway.grpc_call import CallerReader, abort
from gateway.lenient_decoding import UndecodableRequest
from gateway.rollout import RolloutController, RolloutReport
from gateway.rollout_state import Mode

SERVICE = rollout_pb2.DESCRIPTOR.services_by_name["ModelRollout"]


class RolloutServicer:
    def __init__(self, controller: RolloutController, callers: CallerReader) -> None:
        self._controller = controller
        self._callers = callers

    async def Status(self, request: rollout_pb2.RolloutRequest, context: grpc.aio.ServicerContext) -> rollout_pb2.RolloutStatus:
        await self._operator(context, request)
        return await self._run(context, request.model, lambda: None)

    async def Shadow(self, request: rollout_pb2.StartRolloutRequest, context: grpc.aio.ServicerContext) -> rollout_pb2.RolloutStatus:
        return await self._start(request, context, "shadow")

    async def Canary(self, request: rollout_pb2.StartRolloutRequest, context: grpc.aio.ServicerContext) -> rollout_pb2.RolloutStatus:
        return await self._start(request, context, "canary")

    async def Promote(self, request: rollout_pb2.RolloutRequest, context: grpc.aio.ServicerContext) -> rollout_pb2.RolloutStatus:
        await self._operator(context, request)
        return await self._run(context, request.model, lambda: self._controller.promote(request.model))

    async def Rollback(self, request: rollout_pb2.RolloutRequest, context: grpc.aio.ServicerContext) -> rollout_pb2.RolloutStatus:
        await self._operator(context, request)
        return await self._run(context, request.model, lambda: self._controller.rollback(request.model))

    async def _start(
        self, request: rollout_pb2.StartRolloutRequest, context: grpc.aio.ServicerContext, mode: Mode
    ) -> rollout_pb2.RolloutStatus:
        await self._operator(context, request)
        if not request.HasField("share"):
            await abort(context, InvalidArgument("share", "is required (from 0 to 1)"))
        return await self._run(
            context, request.model,
            lambda: self._controller.start_rollout(request.model, mode, request.candidate, request.share),
        )  # fmt: skip

    async def _operator(self, context: grpc.aio.ServicerContext, request: object) -> None:
        try:
            self._callers.principal(context, Role.OPERATOR)
        except RequestError as error:
            await abort(context, error)
        if isinstance(request, UndecodableRequest):
            await abort(context, InvalidArgument(request.field, request.problem))

    async def _run(
        self, context: grpc.aio.ServicerContext, model: str, operation: Callable[[], Awaitable[object] | None]
    ) -> rollout_pb2.RolloutStatus:
        """Runs ``operation`` (None: nothing, for Status) and answers with the state after it."""
        try:
            if not model:
                raise InvalidArgument("model", "is required, e.g. recommender")
            work = operation()
            if work is not None:
                await work
            return _status(await self._controller.report(model))
        except RequestError as error:
            await abort(context, error)


def _status(report: RolloutReport) -> rollout_pb2.RolloutStatus:
    state = report.state
    return rollout_pb2.RolloutStatus(
        model=state.model,
        serving_version=report.serving,
        candidate_version=state.candidate,
        mode=state.mode,
        share=state.share,
        revision=state.revision,
        note=state.note,
        versions=[rollout_pb2.LoadedVersion(version=v, build_id=b, ready=r) for v, b, r in report.versions],
        window_calls=report.window_calls,
        window_errors=report.window_errors,
        window_p99_ms=report.window_p99_ms,
        shadow_compared=report.shadow_compared,
        shadow_mean_overlap=report.shadow_mean_overlap,
        shadow_skipped=report.shadow_skipped,
    )
