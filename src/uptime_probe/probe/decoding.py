"""Content-Encoding decoding of a response body: bounded, and strict about its end.

Hand-written over the codecs' own streaming decoders rather than left to aiohttp,
because aiohttp checks that a compressed body really ended only for `deflate`: a gzip,
brotli or zstd body cut short (with a Content-Length that matches the cut) decodes to
a prefix and reads as complete, so a probe would judge half a document and call it up.
Here every codec must reach its own end-of-stream, a corrupt stream is the target's
fault with the codec's words, and each call returns at most `cap` bytes so a small
compressed body cannot inflate past `max_body` in memory before it is counted.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli

try:  # Python 3.14 ships zstd in the standard library; before it, the backport.
    from compression.zstd import ZstdDecompressor, ZstdError  # type: ignore[import-not-found]
except ImportError:
    from backports.zstd import ZstdDecompressor, ZstdError

# What we can decode, in the order we prefer it: sent as Accept-Encoding.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
_GZIP_MAGIC = b"\x1f\x8b"


class ContentDecodingError(Exception):
    """The body does not decode with the Content-Encoding it declared."""


class _Codec:
    """One layer of decoding. `feed` returns at most `cap` bytes (more input stays held)."""

    name = ""

    def feed(self, data: bytes, cap: int) -> bytes:
        raise NotImplementedError

    def finish(self) -> None:
        """Raise ContentDecodingError unless the stream reached its end."""


class _Identity(_Codec):
    name = "identity"

    def feed(self, data: bytes, cap: int) -> bytes:
        return data


class _Zlib(_Codec):
    """gzip (members may follow each other, RFC 1952 §2.2) and deflate (zlib or raw)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._decoder: zlib._Decompress | None = None
        self._pending = b""

    def _new_decoder(self, head: bytes) -> zlib._Decompress:
        if self.name == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # RFC 9110 says deflate means the zlib format; servers also send raw deflate.
        zlib_header = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)

    def feed(self, data: bytes, cap: int) -> bytes:
        data = self._pending + data
        self._pending = b""
        out = bytearray()
        while data and len(out) <= cap:
            if self._decoder is None:
                if len(data) < 2:
                    self._pending = data
                    break
                self._decoder = self._new_decoder(data)
            decoder = self._decoder
            try:
                out += decoder.decompress(data, cap + 1 - len(out))
            except zlib.error as exc:
                raise ContentDecodingError(f"{self.name} body is corrupt ({exc})") from None
            data = decoder.unconsumed_tail
            if decoder.eof:
                rest = decoder.unused_data
                if self.name == "gzip" and rest.startswith(_GZIP_MAGIC):
                    self._decoder, data = None, rest  # the next gzip member
                else:
                    # Bytes after the end of the stream are not part of the body: ignored,
                    # as browsers and curl ignore them.
                    break
        return bytes(out)

    def finish(self) -> None:
        if self._pending or self._decoder is None or not self._decoder.eof:
            raise ContentDecodingError(f"{self.name} body ends before its compressed stream does")


class _Brotli(_Codec):
    name = "br"

    def __init__(self) -> None:
        self._decoder = brotli.Decompressor()

    def feed(self, data: bytes, cap: int) -> bytes:
        try:
            if self._decoder.is_finished():
                return b""
            out = self._decoder.process(data, output_buffer_limit=cap + 1)
        except brotli.error as exc:
            raise ContentDecodingError(f"br body is corrupt ({exc})") from None
        return bytes(out)

    def finish(self) -> None:
        if not self._decoder.is_finished():
            raise ContentDecodingError("br body ends before its compressed stream does")


class _Zstd(_Codec):
    name = "zstd"

    def __init__(self) -> None:
        self._decoder = ZstdDecompressor()
        self._started = False

    def feed(self, data: bytes, cap: int) -> bytes:
        out = bytearray()
        try:
            while len(out) <= cap:
                if self._decoder.eof:
                    rest = self._decoder.unused_data + data
                    if not rest:
                        break
                    self._decoder = ZstdDecompressor()  # the next frame
                    data = rest
                self._started = True
                out += self._decoder.decompress(data, max_length=cap + 1 - len(out))
                data = b""
                if not self._decoder.eof and (self._decoder.needs_input or len(out) > cap):
                    break
        except ZstdError as exc:
            raise ContentDecodingError(f"zstd body is corrupt ({exc})") from None
        return bytes(out)

    def finish(self) -> None:
        if not self._started or not self._decoder.eof:
            raise ContentDecodingError("zstd body ends before its compressed stream does")


_CODECS: dict[str, Callable[[], _Codec]] = {
    "identity": _Identity,
    "gzip": lambda: _Zlib("gzip"),
    "x-gzip": lambda: _Zlib("gzip"),
    "deflate": lambda: _Zlib("deflate"),
    "br": _Brotli,
    "zstd": _Zstd,
}


class BodyDecoder:
    """Decodes a body through every coding its Content-Encoding lists, in reverse order."""

    def __init__(self, content_encoding: str | None) -> None:
        names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
        unknown = [name for name in names if name not in _CODECS]
        if unknown:
            raise ContentDecodingError(
                f"unsupported Content-Encoding {unknown[0][:40]!r} (we accept {ACCEPT_ENCODING})"
            )
        # The last coding listed was applied last, so it is undone first.
        self._codecs = [_CODECS[name]() for name in reversed(names) if name != "identity"]

    @property
    def identity(self) -> bool:
        return not self._codecs

    def feed(self, data: bytes, cap: int) -> bytes:
        """Decoded bytes of `data`; more than `cap` of them means the body is over its limit."""
        for codec in self._codecs:
            data = codec.feed(data, cap)
        return data

    def finish(self) -> None:
        for codec in self._codecs:
            codec.finish()
