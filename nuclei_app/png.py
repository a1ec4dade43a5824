"""PNG files of the results: 8-bit grey or RGB and 16-bit grey pixels, written with zlib.

Why not Pillow's PNG encoder: it chooses a filter for every row by trying Sub, Up and Paeth
on it, with no switch to turn that off, and that choice is most of the encoding's time. Rows
left unfiltered and deflated at the same level encode 2.2x faster (a 696x520 overlay: 9.3
instead of 20.1 ms) and came out no larger on 11 of 12 DSB overlays (the 12th, an H&E field,
166 vs 124 KB): `python -m benchmarks.png`. The CLI writes three PNGs per image, on the cores
the network needs (`python -m benchmarks.stages`). PNG's filter type 0 is "None": any reader
reads them.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMPRESS_LEVEL = 1  # zlib's fastest: level 6 took 3x as long for files a sixth smaller
ROWS_PER_PIECE = 256  # rows deflated at a time: a huge overlay is never copied whole
COLOUR_TYPES = {1: 0, 3: 2}  # samples per pixel -> PNG colour type (0 grey, 2 RGB)


def png_bytes(pixels: np.ndarray) -> bytes:
    """The PNG of uint8 grey (H, W), uint8 RGB (H, W, 3) or uint16 grey (H, W) pixels."""
    pixels = np.asarray(pixels)
    samples = 1 if pixels.ndim == 2 else pixels.shape[-1]
    depth = pixels.dtype.itemsize if pixels.dtype.kind == "u" else 0   # big- or little-endian alike
    if pixels.ndim not in (2, 3) or samples not in COLOUR_TYPES or depth not in (1, 2) \
            or (samples == 3 and depth != 1) or 0 in pixels.shape[:2]:
        raise ValueError(f"a PNG holds non-empty uint8 grey or RGB or uint16 grey pixels, not {pixels.dtype} "
                         f"{pixels.shape}")
    height, width = pixels.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, pixels.dtype.itemsize * 8, COLOUR_TYPES[samples], 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", deflated_rows(pixels)) + chunk(b"IEND", b"")


def deflated_rows(pixels: np.ndarray) -> bytes:
    """The image data: each row as its filter byte 0 then its samples, big-endian, deflated."""
    compressor = zlib.compressobj(COMPRESS_LEVEL)
    big_endian = pixels.dtype.newbyteorder(">")
    pieces = []
    for top in range(0, pixels.shape[0], ROWS_PER_PIECE):
        piece = np.ascontiguousarray(pixels[top:top + ROWS_PER_PIECE], dtype=big_endian)
        samples = piece.reshape(len(piece), -1).view(np.uint8)
        lines = np.zeros((len(piece), 1 + samples.shape[1]), np.uint8)
        lines[:, 1:] = samples
        pieces.append(compressor.compress(lines))
    pieces.append(compressor.flush())
    return b"".join(pieces)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(target: str | Path | BinaryIO, pixels: np.ndarray) -> None:
    encoded = png_bytes(pixels)
    if hasattr(target, "write"):
        target.write(encoded)
    else:
        Path(target).write_bytes(encoded)
