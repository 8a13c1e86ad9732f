"""Reads an MCAP file record by record from the front, without its index or footer, so a file cut short (a recorder
killed mid-write, a copy that ran out of disk) still yields every message before the damage. Plain Python."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zlib import crc32

MAGIC = b"\x89MCAP0\r\n"
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_FOOTER, OP_DATA_END = 0x03, 0x04, 0x05, 0x06, 0x02, 0x0F


class McapDamage(Exception):
    """The file cannot be read past this point; `offset` is the byte where the unreadable record starts."""

    def __init__(self, offset: int, reason: str):
        super().__init__(f"{reason} at byte {offset}")
        self.offset = offset
        self.reason = reason


@dataclass
class Channel:
    id: int
    topic: str
    msgtype: str
    msgdef: str
    encoding: str
    metadata: dict[str, str] = field(default_factory=dict)


class _Buf:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise struct.error("record shorter than its fields")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode()


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        try:
            from compression import zstd
        except ImportError:
            from backports import zstd
        return zstd.decompress(data)
    if compression == "lz4":
        from lz4.frame import decompress

        return decompress(data)
    raise ValueError(f"unsupported chunk compression '{compression}'")


def _records(data: bytes, base: int) -> Iterator[tuple[int, int, bytes]]:
    """(offset, opcode, body) of each record in `data`; raises McapDamage where a record is cut short."""
    pos = 0
    while pos < len(data):
        if pos + 9 > len(data):
            raise McapDamage(base + pos, "record header cut short")
        op = data[pos]
        (length,) = struct.unpack_from("<Q", data, pos + 1)
        if pos + 9 + length > len(data):
            raise McapDamage(base + pos, f"record (opcode {op:#04x}, {length} bytes) cut short")
        yield base + pos, op, data[pos + 9:pos + 9 + length]
        pos += 9 + length


class McapScanner:
    """Iterate `(channel, log_time_ns, data)` in file order; `channels` fills in as their records are met."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.schemas: dict[int, tuple[str, str]] = {}
        self.channels: dict[int, Channel] = {}
        self.clean_end = False

    def _handle(self, offset: int, op: int, body: bytes) -> Iterator[tuple[Channel, int, bytes]]:
        buf = _Buf(body)
        try:
            if op == OP_SCHEMA:
                sid, name, _enc = buf.u16(), buf.string(), buf.string()
                self.schemas[sid] = (name, buf.take(buf.u32()).decode(errors="replace"))
            elif op == OP_CHANNEL:
                cid, sid, topic, encoding = buf.u16(), buf.u16(), buf.string(), buf.string()
                meta = _Buf(buf.take(buf.u32()))
                metadata = {}
                while meta.pos < len(meta.data):
                    key = meta.string()
                    metadata[key] = meta.string()
                name, msgdef = self.schemas.get(sid, ("", ""))
                self.channels[cid] = Channel(cid, topic, name, msgdef, encoding, metadata)
            elif op == OP_MESSAGE:
                cid, _seq, log_time, _pub = buf.u16(), buf.u32(), buf.u64(), buf.u64()
                channel = self.channels.get(cid)
                if channel is None:
                    raise McapDamage(offset, f"message on channel {cid} that no channel record declared")
                yield channel, log_time, body[buf.pos:]
            elif op == OP_CHUNK:
                _start, _end, size, crc = buf.u64(), buf.u64(), buf.u64(), buf.u32()
                compression = buf.string()
                raw = _decompress(buf.take(buf.u64()), compression, size)
                if len(raw) != size or (crc and crc32(raw) != crc):
                    raise McapDamage(offset, "chunk checksum or size mismatch")
                for inner in _records(raw, offset):
                    yield from self._handle(*inner)
        except (struct.error, UnicodeDecodeError, ValueError, OSError) as err:
            raise McapDamage(offset, f"unreadable record (opcode {op:#04x}: {err})") from err

    def __iter__(self) -> Iterator[tuple[Channel, int, bytes]]:
        """Streams the file (one record in memory at a time); raises McapDamage at the first unreadable record."""
        with self.path.open("rb") as f:
            size = self.path.stat().st_size
            if f.read(len(MAGIC)) != MAGIC:
                raise McapDamage(0, "not an MCAP file (wrong magic)")
            while True:
                offset = f.tell()
                head = f.read(9)
                if not head:
                    return  # ends without a footer: a recording that was not closed, but nothing is cut
                if len(head) < 9:
                    raise McapDamage(offset, "record header cut short")
                op, length = head[0], struct.unpack_from("<Q", head, 1)[0]
                if op in (OP_DATA_END, OP_FOOTER):
                    self.clean_end = True
                    return
                body = f.read(length) if offset + 9 + length <= size else b""
                if len(body) < length:
                    raise McapDamage(offset, f"record (opcode {op:#04x}, {length} bytes) cut short")
                yield from self._handle(offset, op, body)
