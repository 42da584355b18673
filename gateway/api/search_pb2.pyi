from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchRequest(_message.Message):
    __slots__ = ("query", "k", "feature", "filters")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    feature: str
    filters: SearchFilters
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., feature: _Optional[str] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ...) -> None: ...

class SearchFilters(_message.Message):
    __slots__ = ("exclude_item_ids",)
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, exclude_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("items", "info")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.Item]
    info: _common_pb2.ResponseInfo
    def __init__(self, items: _Optional[_Iterable[_Union[_common_pb2.Item, _Mapping]]] = ..., info: _Optional[_Union[_common_pb2.ResponseInfo, _Mapping]] = ...) -> None: ...
