"""The figures validation runs drew: PNG files in the library home, named by their SHA-256.

``<home>/figures/<first two hex digits>/<sha256>.png``. A record refers to a figure by
its digest (``Output.sha256``), so the same picture drawn twice is stored once and a
figure's bytes can never change under its name. Every file here passed
``capture.check_png`` before it was written; reads check the digest again.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

__all__ = ["MAX_FIGURE_BYTES", "BadPNG", "FigureStore", "check_png", "held", "hold", "is_digest"]

MAX_FIGURE_BYTES = 200_000
MAX_SIDE = 4000  # pixels
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks kept when a PNG is rewritten: what draws the image, nothing that carries text.
_KEPT_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"sRGB", b"pHYs"}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}

_DIGEST = re.compile(r"[0-9a-f]{64}")


def is_digest(text: object) -> bool:
    """Whether ``text`` is a lower-case hex SHA-256 (the only names this store knows)."""
    return isinstance(text, str) and _DIGEST.fullmatch(text) is not None


class BadPNG(ValueError):
    """Bytes that are not a PNG this library will store."""


def check_png(data: bytes, max_bytes: int = MAX_FIGURE_BYTES) -> tuple[bytes, int, int]:
    """``data`` as a clean PNG (only image chunks kept) with its width and height.

    Raises ``BadPNG`` with a one-line reason for anything else: too big, wrong
    signature, a bad CRC, a chunk past the end, an IHDR out of range, an
    interlaced or oversized image, image data that does not inflate to exactly
    what the header promises, or bytes after IEND.
    """
    if len(data) > max_bytes:
        raise BadPNG(f"{len(data):,} bytes, over the {max_bytes:,}-byte limit")
    if not data.startswith(PNG_SIGNATURE):
        raise BadPNG("not a PNG (wrong signature)")
    pos, chunks, header = len(PNG_SIGNATURE), [], None
    idat = bytearray()
    while True:
        if pos + 12 > len(data):
            raise BadPNG("truncated PNG")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise BadPNG("a PNG chunk runs past the end")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(kind + body) != crc:
            raise BadPNG("a PNG chunk has a bad CRC")
        if not chunks and kind != b"IHDR":
            raise BadPNG("PNG does not start with IHDR")
        if kind == b"IHDR":
            if chunks or length != 13:
                raise BadPNG("bad PNG header")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        if kind in _KEPT_CHUNKS:
            chunks.append(data[pos:end])
        elif not kind[:1].islower() and kind not in _KEPT_CHUNKS:
            raise BadPNG(f"unexpected critical PNG chunk {kind!r}")
        pos = end
        if kind == b"IEND":
            break
    if pos != len(data):
        raise BadPNG("bytes after the end of the PNG")
    assert header is not None
    width, height, depth, color, compression, filtering, interlace = header
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise BadPNG(f"image {width}x{height} is outside 1..{MAX_SIDE} pixels a side")
    if color not in _CHANNELS or depth not in _DEPTHS[color] or compression or filtering:
        raise BadPNG("unsupported PNG colour type or depth")
    if interlace:
        raise BadPNG("interlaced PNG")
    row = (width * _CHANNELS[color] * depth + 7) // 8 + 1
    expected = row * height
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(bytes(idat), expected + 1)
    except zlib.error:
        raise BadPNG("PNG image data does not inflate") from None
    if len(raw) != expected or not inflater.eof or inflater.unconsumed_tail:
        raise BadPNG("PNG image data does not match its header")
    return PNG_SIGNATURE + b"".join(chunks), width, height


def hold(validation: Any, data: dict[str, bytes]) -> Any:
    """Keep checked PNG bytes (digest -> bytes) beside a Validation, outside its JSON, until
    the library stores them with it; returns the validation."""
    validation.__dict__["_figure_data"] = dict(data)
    return validation


def held(validation: Any) -> dict[str, bytes]:
    """The PNG bytes ``hold`` put beside ``validation`` (none for one read from JSON)."""
    return dict(validation.__dict__.get("_figure_data") or {})


class FigureStore:
    """Content-addressed PNG files under ``<home>/figures``; safe for several processes."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.root = Path(home) / "figures"

    def path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise ValueError(f"not a figure id: {digest!r}")
        return self.root / digest[:2] / f"{digest}.png"

    def put(self, data: bytes) -> str:
        """Store ``data`` (an already checked PNG) and return its digest; a no-op if present."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file():
            try:
                os.utime(target)  # fresh again: ``Library.prune_figures`` spares it
            except OSError:
                pass
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)  # atomic: a reader sees the whole file or none
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return digest

    def get(self, digest: str) -> bytes | None:
        """The PNG stored under ``digest``, or None if absent (or not what its name says)."""
        try:
            data = self.path(digest).read_bytes()
        except (OSError, ValueError):
            return None
        return data if hashlib.sha256(data).hexdigest() == digest else None

    def has(self, digest: str) -> bool:
        try:
            return self.path(digest).is_file()
        except ValueError:
            return False
