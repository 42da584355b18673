"""Request decoding that turns a malformed string field into INVALID_ARGUMENT, not INTERNAL.

grpcio fails a call whose request does not parse (e.g. a string field holding bad UTF-8)
with INTERNAL before any handler runs — a client mistake reported as a server fault. These
deserializers catch the parse error, find which field is at fault, and hand the servicer an
:class:`UndecodableRequest` that it rejects (and settles) like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from google.protobuf import empty_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from gateway.errors import InvalidArgument

M = TypeVar("M", bound=Message)
_LENGTH_DELIMITED = 2


@dataclass(frozen=True)
class UndecodableRequest:
    """Stands in for a request that did not parse; ``field`` names the offending field."""

    field: str
    problem: str

    def reject(self) -> NoReturn:
        raise InvalidArgument(self.field, self.problem)


def lenient_deserializer(message_class: type[M]) -> Callable[[bytes], M | UndecodableRequest]:
    def deserialize(data: bytes) -> M | UndecodableRequest:
        try:
            return message_class.FromString(data)
        except DecodeError:
            field = _field_with_bad_utf8(message_class.DESCRIPTOR, data)
            if field is None:
                return UndecodableRequest("request", "is not a valid protobuf message")
            return UndecodableRequest(field, "is not valid UTF-8")

    return deserialize


def _field_with_bad_utf8(descriptor: Descriptor, data: bytes, prefix: str = "") -> str | None:
    """Walks the raw fields (parsed as unknown fields of an empty message, which skips UTF-8
    checks) and returns the dotted name of the first string field that is not UTF-8."""
    try:
        raw_fields = UnknownFieldSet(empty_pb2.Empty.FromString(data))
    except DecodeError:
        return None
    for raw in raw_fields:
        field = descriptor.fields_by_number.get(raw.field_number)
        if field is None or raw.wire_type != _LENGTH_DELIMITED:
            continue
        name = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            try:
                bytes(raw.data).decode("utf-8")
            except UnicodeDecodeError:
                return name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            nested = _field_with_bad_utf8(field.message_type, bytes(raw.data), name + ".")
            if nested is not None:
                return nested
    return None
