"""The rollout state of one model and its transitions, as pure functions (no I/O).

``{serving, candidate, mode, share}``: ``mode`` none (only the serving version answers), shadow
(a ``share`` of calls is also sent to the candidate, whose answers go to no caller) or canary
(a ``share`` of calls is answered by the candidate). ``promote`` makes the candidate the serving
version; ``rollback`` sends all traffic back to the serving version and drops the candidate.
The gateway (gateway/rollout.py) loads and unloads versions in Triton around these transitions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal, get_args

from gateway.errors import FailedPrecondition, InvalidArgument

Mode = Literal["none", "shadow", "canary"]
MODES: tuple[str, ...] = get_args(Mode)
# Why a rollout ended or changed: bounded, for the rollback metric's label.
RollbackReason = Literal["operator", "error_rate", "p99"]
ROLLBACK_REASONS: tuple[str, ...] = get_args(RollbackReason)


@dataclass(frozen=True)
class RolloutState:
    """``serving``: "" until a rollout names it (the config's ``serving_version`` serves);
    ``revision`` grows with every change, so replicas apply only newer states; ``note`` says
    what the last transition was and why (shown by ``tollgate models status``)."""

    model: str
    serving: str = ""
    candidate: str = ""
    mode: Mode = "none"
    share: float = 0.0
    revision: int = 0
    note: str = ""

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RolloutState:
        """ValueError when ``text`` is not a rollout state (a corrupt or foreign key)."""
        try:
            values = json.loads(text)
            state = cls(
                model=str(values["model"]),
                serving=str(values["serving"]),
                candidate=str(values["candidate"]),
                mode=values["mode"],
                share=float(values["share"]),
                revision=int(values["revision"]),
                note=str(values.get("note", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a rollout state: {error!r}") from None
        if state.mode not in MODES or not 0.0 <= state.share <= 1.0:
            raise ValueError(f"not a rollout state: mode {state.mode!r}, share {state.share}")
        return state


def check_share(share: float) -> float:
    if not 0.0 <= share <= 1.0:  # also refuses NaN
        raise InvalidArgument("share", f"must be between 0 and 1, got {share}")
    return share


def start(state: RolloutState, mode: Mode, candidate: str, share: float, serving: str) -> RolloutState:
    """Shadow or canary of ``candidate`` (``serving``: the version serving now). Switching
    between shadow and canary of the same candidate, or changing its share, is allowed; another
    candidate must wait until this one is promoted or rolled back."""
    check_share(share)
    if mode not in ("shadow", "canary"):
        raise InvalidArgument("mode", f"must be shadow or canary, got {mode!r}")
    if candidate == serving:
        raise FailedPrecondition(f"version {candidate} of {state.model} is the serving version, not a candidate")
    if state.active and state.candidate != candidate:
        raise FailedPrecondition(
            f"a rollout of version {state.candidate} of {state.model} is in progress ({state.mode}): "
            "promote or roll it back first"
        )
    return replace(
        state, serving=serving, candidate=candidate, mode=mode, share=share, revision=state.revision + 1,
        note=f"{mode} of version {candidate} at {share:.0%}",
    )  # fmt: skip


def promote(state: RolloutState) -> RolloutState:
    """The candidate becomes the serving version."""
    if not state.active:
        raise FailedPrecondition(f"{state.model} has no candidate to promote (start a shadow or canary first)")
    return replace(
        state, serving=state.candidate, candidate="", mode="none", share=0.0, revision=state.revision + 1,
        note=f"promoted version {state.candidate} (was {state.serving})",
    )  # fmt: skip


def rollback(state: RolloutState, reason: RollbackReason, detail: str = "") -> RolloutState:
    """All traffic back to the serving version; the candidate is dropped."""
    if not state.active:
        raise FailedPrecondition(f"{state.model} has no rollout to roll back")
    why = f"{reason}: {detail}" if detail else reason
    return replace(
        state, candidate="", mode="none", share=0.0, revision=state.revision + 1,
        note=f"rolled back version {state.candidate} ({why})",
    )  # fmt: skip


class EvenSplit:
    """Selects exactly ``share`` of calls, spread evenly: call n (from 0) is selected when
    floor((n + 1) * share) > floor(n * share). Over any N consecutive calls the selected count
    is within one of N * share, so a canary's split never drifts from its setting (a random or
    hashed split only comes close on average)."""

    __slots__ = ("share", "_calls")

    def __init__(self, share: float) -> None:
        self.share = share
        self._calls = 0

    def take(self) -> bool:
        calls = self._calls
        self._calls = calls + 1
        return int((calls + 1) * self.share) > int(calls * self.share)
