from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Item(_message.Message):
    __slots__ = ("item_id", "title", "score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    score: float
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version", "build_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    build_id: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., build_id: _Optional[str] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("pool", "device", "location", "reason", "attempts")
    POOL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    pool: str
    device: str
    location: str
    reason: str
    attempts: int
    def __init__(self, pool: _Optional[str] = ..., device: _Optional[str] = ..., location: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class Cost(_message.Message):
    __slots__ = ("currency", "total", "compute", "gateway", "cache", "avoided", "compute_ns", "price_book_version", "egress")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    AVOIDED_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_NS_FIELD_NUMBER: _ClassVar[int]
    PRICE_BOOK_VERSION_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    currency: str
    total: float
    compute: float
    gateway: float
    cache: float
    avoided: float
    compute_ns: int
    price_book_version: str
    egress: float
    def __init__(self, currency: _Optional[str] = ..., total: _Optional[float] = ..., compute: _Optional[float] = ..., gateway: _Optional[float] = ..., cache: _Optional[float] = ..., avoided: _Optional[float] = ..., compute_ns: _Optional[int] = ..., price_book_version: _Optional[str] = ..., egress: _Optional[float] = ...) -> None: ...

class ResponseInfo(_message.Message):
    __slots__ = ("request_id", "model", "placement", "cache_hit", "cost")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: ModelRef
    placement: Placement
    cache_hit: bool
    cost: Cost
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., cache_hit: _Optional[bool] = ..., cost: _Optional[_Union[Cost, _Mapping]] = ...) -> None: ...
