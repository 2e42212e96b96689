"""Messages between the bot and its grading processes: a JSON header and binary blobs.

    u32 header length | header (UTF-8 JSON) | u32 blob count | (u64 length | bytes) per blob

The blobs carry what is big or binary (a submission's annotations, JPEG pictures) without
encoding it into the JSON. Only JSON and bytes cross: nothing is unpickled from a process
that read untrusted input.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Sequence
from typing import Any, BinaryIO

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
MAX_HEADER = 64 * 1024 * 1024
MAX_BLOB = 512 * 1024 * 1024


class FramingError(ValueError):
    """A message that does not follow the format (a process that died mid-write, say)."""


def encode_message(header: dict[str, Any], blobs: Sequence[bytes] = ()) -> bytes:
    """One message as bytes."""
    head = json.dumps(header, ensure_ascii=False).encode("utf-8")
    parts = [_U32.pack(len(head)), head, _U32.pack(len(blobs))]
    for blob in blobs:
        parts += [_U64.pack(len(blob)), blob]
    return b"".join(parts)


def _decode_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FramingError(f"bad message header: {exc}") from exc
    if not isinstance(header, dict):
        raise FramingError("bad message header: not an object")
    return header


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise FramingError("the stream ended inside a message")
    return data


def read_message(stream: BinaryIO) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next message from a blocking stream, or None at its end."""
    first = stream.read(_U32.size)
    if not first:
        return None
    if len(first) != _U32.size:
        raise FramingError("the stream ended inside a message")
    (size,) = _U32.unpack(first)
    if size > MAX_HEADER:
        raise FramingError("message header too large")
    header = _decode_header(_read_exactly(stream, size))
    (count,) = _U32.unpack(_read_exactly(stream, _U32.size))
    blobs = []
    for _ in range(count):
        (length,) = _U64.unpack(_read_exactly(stream, _U64.size))
        if length > MAX_BLOB:
            raise FramingError("message blob too large")
        blobs.append(_read_exactly(stream, length))
    return header, blobs


def write_message(stream: BinaryIO, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    """Write one message to a blocking stream and flush it."""
    stream.write(encode_message(header, blobs))
    stream.flush()


async def read_message_async(reader: asyncio.StreamReader,
                             ) -> tuple[dict[str, Any], list[bytes]]:
    """The next message from an asyncio stream (IncompleteReadError at its end)."""
    (size,) = _U32.unpack(await reader.readexactly(_U32.size))
    if size > MAX_HEADER:
        raise FramingError("message header too large")
    header = _decode_header(await reader.readexactly(size))
    (count,) = _U32.unpack(await reader.readexactly(_U32.size))
    blobs = []
    for _ in range(count):
        (length,) = _U64.unpack(await reader.readexactly(_U64.size))
        if length > MAX_BLOB:
            raise FramingError("message blob too large")
        blobs.append(await reader.readexactly(length))
    return header, blobs
