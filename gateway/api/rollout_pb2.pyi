from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RolloutRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class StartRolloutRequest(_message.Message):
    __slots__ = ("model", "candidate", "share")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    model: str
    candidate: str
    share: float
    def __init__(self, model: _Optional[str] = ..., candidate: _Optional[str] = ..., share: _Optional[float] = ...) -> None: ...

class LoadedVersion(_message.Message):
    __slots__ = ("version", "build_id", "ready")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    version: str
    build_id: str
    ready: bool
    def __init__(self, version: _Optional[str] = ..., build_id: _Optional[str] = ..., ready: _Optional[bool] = ...) -> None: ...

class RolloutStatus(_message.Message):
    __slots__ = ("model", "serving_version", "candidate_version", "mode", "share", "revision", "note", "versions", "window_calls", "window_errors", "window_p99_ms", "shadow_compared", "shadow_mean_overlap", "shadow_skipped")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_CALLS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_P99_MS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_COMPARED_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MEAN_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    SHADOW_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    model: str
    serving_version: str
    candidate_version: str
    mode: str
    share: float
    revision: int
    note: str
    versions: _containers.RepeatedCompositeFieldContainer[LoadedVersion]
    window_calls: int
    window_errors: int
    window_p99_ms: float
    shadow_compared: int
    shadow_mean_overlap: float
    shadow_skipped: int
    def __init__(self, model: _Optional[str] = ..., serving_version: _Optional[str] = ..., candidate_version: _Optional[str] = ..., mode: _Optional[str] = ..., share: _Optional[float] = ..., revision: _Optional[int] = ..., note: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[LoadedVersion, _Mapping]]] = ..., window_calls: _Optional[int] = ..., window_errors: _Optional[int] = ..., window_p99_ms: _Optional[float] = ..., shadow_compared: _Optional[int] = ..., shadow_mean_overlap: _Optional[float] = ..., shadow_skipped: _Optional[int] = ...) -> None: ...
