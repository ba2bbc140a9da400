"""An answer's body as it is read: the bounds on reading it, and decoding within them."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from .errors import MAX_BODY, InvalidResponse

# Bytes asked of the socket at a time: what an answer may take in memory beyond its cap.
READ_CHUNK = 64 * 1024
# Of an answer that is not a 2xx, only the start is kept (HTTPError.body, MAX_BODY
# characters), so no more than this is read of it.
ERROR_BODY_BYTES = 4 * MAX_BODY
# Encodings we can decode with a bound on the output; br and zstd are not offered.
ACCEPT_ENCODING = "gzip, deflate"
DECODABLE = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})  # Content-Encoding, lowercase


def content_length(headers: Mapping[str, str]) -> int | None:
    try:
        return int(headers.get("Content-Length", ""))
    except ValueError:
        return None


class Body:
    """An answer's body as it comes in, decoded with a bound on what decoding makes (an
    answer of a few KiB of gzip can inflate to gigabytes)."""

    def __init__(self, operation: str, encoding: str):
        self.operation = operation
        self.encoding = encoding
        if encoding not in DECODABLE:
            raise InvalidResponse(operation, f"content encoding {encoding!r}, not one we asked for")
        self._inflate = None if self.encoding in ("", "identity") else _inflater()
        self._parts: list[bytes] = []
        self.size = 0  # bytes of body, decoded
        self.raw = 0  # bytes as received

    def feed(self, chunk: bytes, room: int) -> None:
        """Take `chunk`; decode no more than `room` bytes of it (what is left is dropped:
        the caller stops at the cap)."""
        self.raw += len(chunk)
        if self._inflate is None:
            self._keep(chunk)
            return
        try:
            while chunk and room > 0:
                out = self._inflate.decompress(chunk, room)
                self._keep(out)
                room -= len(out)
                chunk = self._inflate.unconsumed_tail
                if self._inflate.eof and self._inflate.unused_data:  # gzip members follow
                    chunk, self._inflate = self._inflate.unused_data, _inflater()
            if chunk:
                self.size += 1  # more than room: over the cap
        except zlib.error:
            raise InvalidResponse(self.operation, f"the {self.encoding} body cannot be decoded") from None

    def end(self, *, complete: bool) -> None:
        if complete and self._inflate is not None and not self._inflate.eof:
            raise InvalidResponse(self.operation, f"the {self.encoding} body ends early")

    def _keep(self, data: bytes) -> None:
        if data:
            self._parts.append(data)
            self.size += len(data)

    def data(self) -> bytes:
        return b"".join(self._parts)


def _inflater() -> Any:
    return zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or a zlib header, whichever comes
