"""Domain errors of a request, each carrying the gRPC status name it maps to.

Domain code raises these without importing grpc; the servicer turns ``status`` into a
``grpc.StatusCode`` of the same name.
"""

from __future__ import annotations


class RequestError(Exception):
    """A request that cannot be answered; ``status`` is a gRPC status code name."""

    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(RequestError):
    """The caller sent a bad field; the message names it."""

    status = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class BackendUnavailable(RequestError):
    """No model server can take the call right now."""

    status = "UNAVAILABLE"


class LedgerUnavailable(RequestError):
    """Nothing can record a call's cost (the ledger and its journal both fail): fail closed."""

    status = "UNAVAILABLE"


class PoolsSaturated(RequestError):
    """Every pool that could serve the call is at its concurrency limit: shed, don't queue."""

    status = "RESOURCE_EXHAUSTED"


class BudgetExhausted(RequestError):
    """The monthly budget of the call's feature or tenant is spent and set to shed traffic."""

    status = "RESOURCE_EXHAUSTED"


class BackendFailed(RequestError):
    """The model server took the call and failed it: a fault on our side, not the caller's."""

    status = "INTERNAL"


class DeadlineExceeded(RequestError):
    """The caller's deadline ran out before the model answered."""

    status = "DEADLINE_EXCEEDED"


class Unauthenticated(RequestError):
    """No credential, or one the gateway does not accept."""

    status = "UNAUTHENTICATED"


class PermissionDenied(RequestError):
    """A valid credential whose rights do not cover the call."""

    status = "PERMISSION_DENIED"


class NotFound(RequestError):
    """The call names something that does not exist (for this caller)."""

    status = "NOT_FOUND"


class FailedPrecondition(RequestError):
    """The operation does not apply to the current state (e.g. promote without a candidate)."""

    status = "FAILED_PRECONDITION"
