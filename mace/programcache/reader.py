"""A bounded little-endian reader: every length is checked against the bytes that remain
before anything is sliced, so a hostile length field can never cause a large allocation."""
from __future__ import annotations

import struct

from mace.programcache.errors import ProgramCacheError

_U16, _U32, _U64, _I32, _I64 = (struct.Struct(f) for f in ("<H", "<I", "<Q", "<i", "<q"))


class Truncated(Exception):
    """Internal: a read ran past the end. Callers turn it into a typed ProgramCacheError."""


class Reader:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes | memoryview, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _fixed(self, st: struct.Struct) -> int:
        if st.size > self.remaining:
            raise Truncated(f"need {st.size} bytes at offset {self.pos}, {self.remaining} left")
        value = st.unpack_from(self.buf, self.pos)[0]
        self.pos += st.size
        return value

    def u16(self) -> int:
        return self._fixed(_U16)

    def u32(self) -> int:
        return self._fixed(_U32)

    def u64(self) -> int:
        return self._fixed(_U64)

    def i32(self) -> int:
        return self._fixed(_I32)

    def i64(self) -> int:
        return self._fixed(_I64)

    def take(self, n: int) -> bytes:
        """n bytes; n is checked against what remains before the copy."""
        if n < 0 or n > self.remaining:
            raise Truncated(f"length {n} at offset {self.pos} exceeds the {self.remaining} "
                            f"bytes left")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        if n < 0 or n > self.remaining:
            raise Truncated(f"length {n} at offset {self.pos} exceeds the {self.remaining} "
                            f"bytes left")
        self.pos += n

    def str16(self) -> str:
        return self.take(self.u16()).decode("utf-8")

    def str32(self) -> str:
        return self.take(self.u32()).decode("utf-8")

    def blob64(self) -> bytes:
        return self.take(self.u64())


def check(cond: bool, error: type[ProgramCacheError], message: str) -> None:
    if not cond:
        raise error(message)
