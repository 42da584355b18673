import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CostReportRequest(_message.Message):
    __slots__ = ("by", "since", "until", "page_size", "page_token")
    BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    by: _containers.RepeatedScalarFieldContainer[str]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, by: _Optional[_Iterable[str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class CostReportRow(_message.Message):
    __slots__ = ("group", "is_total", "currency", "requests", "cache_hits", "errors", "compute_seconds", "direct", "compute", "gateway", "cache", "egress", "avoided", "reconciled", "overhead", "idle", "storage", "operations", "fully_loaded", "cost_basis", "cost_per_1k_requests", "clicks", "conversions", "revenue", "cost_per_conversion", "return_on_cost")
    class GroupEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GROUP_FIELD_NUMBER: _ClassVar[int]
    IS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DIRECT_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    AVOIDED_FIELD_NUMBER: _ClassVar[int]
    RECONCILED_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    FULLY_LOADED_FIELD_NUMBER: _ClassVar[int]
    COST_BASIS_FIELD_NUMBER: _ClassVar[int]
    COST_PER_1K_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    COST_PER_CONVERSION_FIELD_NUMBER: _ClassVar[int]
    RETURN_ON_COST_FIELD_NUMBER: _ClassVar[int]
    group: _containers.ScalarMap[str, str]
    is_total: bool
    currency: str
    requests: int
    cache_hits: int
    errors: int
    compute_seconds: float
    direct: float
    compute: float
    gateway: float
    cache: float
    egress: float
    avoided: float
    reconciled: bool
    overhead: float
    idle: float
    storage: float
    operations: float
    fully_loaded: float
    cost_basis: str
    cost_per_1k_requests: float
    clicks: int
    conversions: int
    revenue: float
    cost_per_conversion: float
    return_on_cost: float
    def __init__(self, group: _Optional[_Mapping[str, str]] = ..., is_total: _Optional[bool] = ..., currency: _Optional[str] = ..., requests: _Optional[int] = ..., cache_hits: _Optional[int] = ..., errors: _Optional[int] = ..., compute_seconds: _Optional[float] = ..., direct: _Optional[float] = ..., compute: _Optional[float] = ..., gateway: _Optional[float] = ..., cache: _Optional[float] = ..., egress: _Optional[float] = ..., avoided: _Optional[float] = ..., reconciled: _Optional[bool] = ..., overhead: _Optional[float] = ..., idle: _Optional[float] = ..., storage: _Optional[float] = ..., operations: _Optional[float] = ..., fully_loaded: _Optional[float] = ..., cost_basis: _Optional[str] = ..., cost_per_1k_requests: _Optional[float] = ..., clicks: _Optional[int] = ..., conversions: _Optional[int] = ..., revenue: _Optional[float] = ..., cost_per_conversion: _Optional[float] = ..., return_on_cost: _Optional[float] = ...) -> None: ...

class CostReportResponse(_message.Message):
    __slots__ = ("rows", "next_page_token")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[CostReportRow]
    next_page_token: str
    def __init__(self, rows: _Optional[_Iterable[_Union[CostReportRow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordOutcomeRequest(_message.Message):
    __slots__ = ("outcome_id", "request_id", "kind", "revenue", "currency", "occurred_at")
    OUTCOME_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    outcome_id: str
    request_id: str
    kind: str
    revenue: float
    currency: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, outcome_id: _Optional[str] = ..., request_id: _Optional[str] = ..., kind: _Optional[str] = ..., revenue: _Optional[float] = ..., currency: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordOutcomeResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...
