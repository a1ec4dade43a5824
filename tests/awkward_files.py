"""A folder of awkward inputs, written on the fly, for "one bad file never ends a run".

``write_corpus(folder)`` writes every kind of file a user's folder may hold (damaged files of
every supported format, decompression bombs, strips, odd pixel types, odd names, a symlink
loop) and returns one ``Case`` per entry saying what the batch run must do with it. Files that
should segment are 64x64 with a few bright disks, so one run of the tiny model over the whole
corpus takes seconds. Bombs are crafted byte by byte: a few hundred bytes that declare
gigapixels, so writing them costs no memory.
"""
from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .conftest import fluorescence_like, synthetic_labels

OK, ERROR, EITHER, IGNORED = "ok", "error", "either", "ignored"
SIZE = (64, 64)  # (height, width) of the images that should segment
BOMB_SIDE = 40_000  # 1.6 gigapixels declared: 40 times the reader's limit


@dataclass(frozen=True)
class Case:
    """One corpus entry and what a batch run must do with it.

    outcome: "ok" = segmented, with labels of ``size``; "error" = skipped, the reason naming
    the file and containing ``reason``; "either" = one of the two (a bit flip in compressed
    pixel data may still decode: which, is up to the codec); "ignored" = not an image the
    folder scan should pick up at all (a symlink loop, macOS metadata)."""
    name: str                        # path relative to the corpus folder
    kind: str                        # what is awkward about it
    outcome: str
    reason: str = ""                 # for "error": a substring of the reason given
    size: tuple[int, int] | None = None  # for "ok" and "either": (height, width) of the input


def cells(seed: int = 0, shape: tuple[int, int] = SIZE) -> np.ndarray:
    """uint8 grey fluorescence-like image: a few bright disks on a dark background."""
    return fluorescence_like(synthetic_labels(shape, seed=seed, count=4), seed)


def encode(array: np.ndarray | Image.Image, format: str, **options) -> bytes:
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def tiff(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


FORMATS = {  # extension -> the bytes of a good 64x64 image in that format
    "png": lambda: encode(cells(1), "PNG"),
    "jpg": lambda: encode(cells(2), "JPEG", quality=90),
    "tif": lambda: tiff(cells(3), compression="zlib"),
    "bmp": lambda: encode(cells(4), "BMP"),
    "gif": lambda: encode(cells(5), "GIF"),
    "webp": lambda: encode(cells(6), "WEBP", quality=90),
}
# Outcome of flipping bits in the second half of a file (the pixel data): deflate's checksum
# notices in PNG and zlib-compressed TIFF; JPEG, WebP, GIF's LZW and raw BMP pixels may decode
# to a slightly different picture, which is fine too.
BIT_FLIP_OUTCOMES = {"png": ERROR, "jpg": EITHER, "tif": ERROR, "bmp": EITHER, "gif": EITHER, "webp": EITHER}


def flip_bits(data: bytes, count: int = 16, seed: int = 0) -> bytes:
    """``count`` random bits flipped in the second half of ``data`` (past the headers)."""
    rng = np.random.default_rng(seed)
    damaged = bytearray(data)
    for position in rng.integers(len(data) // 2, len(data), count):
        damaged[position] ^= 1 << int(rng.integers(0, 8))
    return bytes(damaged)


# --- decompression bombs: headers declaring gigapixels, a few bytes of pixel data ---------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey, no interlace
    pixels = zlib.compress(b"\x00" * 4096)  # a few rows: the reader must refuse before decoding
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def tiff_bomb(width: int, height: int) -> bytes:
    """Little-endian TIFF, one deflate strip of a few bytes declared to hold width x height."""
    pixels = zlib.compress(b"\x00" * 4096)
    tags = [(256, width), (257, height), (258, 8), (259, 8), (262, 1), (273, None), (277, 1), (278, height),
            (279, len(pixels))]
    ifd_size = 2 + 12 * len(tags) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack("<H", len(tags))
    for tag, value in tags:
        ifd += struct.pack("<HHII", tag, 4, 1, data_offset if value is None else value)  # LONG values
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + pixels


def gif_bomb(screen: tuple[int, int], frame: tuple[int, int]) -> bytes:
    """A GIF whose logical screen or first frame declares (width, height) of up to 65535."""
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0)
    pixels = bytes([2, 2, 0x4C, 0x01, 0])  # LZW code size 2, one 2-byte sub-block, terminator
    return header + descriptor + pixels + b"\x3b"


def webp_bomb(width: int, height: int) -> bytes:
    """An extended WebP header (VP8X) declaring a canvas of up to 16384x16384, and no image."""
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + canvas
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def bmp_bomb(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 1, 0, 0, 2835, 2835, 2, 0)
    palette = b"\x00\x00\x00\x00\xff\xff\xff\x00"
    pixels = b"\x00" * 64
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


# --- the corpus ---------------------------------------------------------------------------

class _Corpus:
    def __init__(self, folder: Path):
        self.folder = folder
        self.cases: list[Case] = []

    def add(self, name: str, kind: str, data: bytes, outcome: str = OK, reason: str = "",
            size: tuple[int, int] | None = SIZE) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.cases.append(Case(name, kind, outcome, reason, size if outcome in (OK, EITHER) else None))

    def error(self, name: str, kind: str, data: bytes, reason: str) -> None:
        self.add(name, kind, data, ERROR, reason)


def write_corpus(folder: str | Path) -> list[Case]:
    """Writes the awkward files under ``folder``; one Case per entry."""
    corpus = _Corpus(Path(folder))
    _every_format(corpus)
    _wrong_extensions(corpus)
    _bombs(corpus)
    _shapes(corpus)
    _pixel_types(corpus)
    _pages_and_frames(corpus)
    _names(corpus)
    _links(corpus)
    return corpus.cases


def _every_format(corpus: _Corpus) -> None:
    for extension, make in FORMATS.items():
        good = make()
        corpus.add(f"good.{extension}", f"good {extension.upper()}", good)
        corpus.error(f"empty.{extension}", f"empty .{extension} file", b"", "the file is empty")
        corpus.error(f"truncated.{extension}", f"{extension.upper()} cut in half", good[: len(good) // 2],
                     "damaged or truncated")
        outcome = BIT_FLIP_OUTCOMES[extension]
        corpus.add(f"bitflip.{extension}", f"{extension.upper()} with flipped bits", flip_bits(good), outcome,
                   "damaged or truncated" if outcome == ERROR else "")


def _wrong_extensions(corpus: _Corpus) -> None:
    corpus.add("png_named.jpg", "PNG content named .jpg (read by content)", FORMATS["png"]())
    corpus.add("jpeg_named.tif", "JPEG content named .tif (read by content)", FORMATS["jpg"]())
    corpus.error("notes.png", "text file named .png", b"Nuclei counted by hand: 41\n", "not a readable image")
    corpus.error("page.tif", "HTML error page saved as .tif", b"<!DOCTYPE html><html>404</html>",
                 "not a readable image")


def _bombs(corpus: _Corpus) -> None:
    side = BOMB_SIDE
    corpus.error("bomb.png", "PNG bomb: IHDR 40000x40000, tiny IDAT", png_bomb(side, side), "decompression bomb")
    corpus.error("bomb_45mpx.png", "PNG bomb under Pillow's own limit: 9000x5000",
                 png_bomb(9000, 5000), "decompression bomb")
    # The reader refuses it as a bomb; the CLI first tries it block by block (a TIFF over the
    # in-memory limit), and one compressed strip of 1.6 gigapixels can't be read that way.
    corpus.error("bomb.tif", "TIFF bomb: ImageWidth/ImageLength 40000", tiff_bomb(side, side), "decompression bomb")
    corpus.error("bomb_screen.gif", "GIF bomb: 65535x65535 logical screen", gif_bomb((65535, 65535), (1, 1)),
                 "decompression bomb")
    corpus.error("bomb_frame.gif", "GIF bomb: 10x10 screen, 60000x60000 frame", gif_bomb((10, 10), (60000, 60000)),
                 "decompression bomb")
    corpus.error("bomb.bmp", "BMP bomb: 40000x40000 header", bmp_bomb(side, side), "decompression bomb")
    corpus.error("bomb.webp", "WebP bomb: 16383x16383 canvas", webp_bomb(16383, 16383), "decompression bomb")


def _shapes(corpus: _Corpus) -> None:
    corpus.error("dot_1x1.png", "1x1 image", encode(np.full((1, 1), 200, np.uint8), "PNG"), "is only 1x1 pixels")
    corpus.error("row_1x64.png", "1xN strip (one row)", encode(cells(7)[:1], "PNG"), "at least 2x2")
    corpus.error("column_64x1.tif", "Nx1 strip (one column)", tiff(cells(8)[:, :1]), "at least 2x2")
    corpus.add("rows_2x64.png", "2xN strip, the smallest accepted", encode(cells(9)[:2], "PNG"), size=(2, 64))
    corpus.add("columns_64x2.bmp", "Nx2 strip", encode(np.ascontiguousarray(cells(10)[:, :2]), "BMP"), size=(64, 2))
    corpus.add("band_16x256.png", "16xN band", encode(cells(11, (32, 256))[8:24].copy(), "PNG"), size=(16, 256))
    corpus.add("tall_300x3.tif", "tall thin strip", tiff(cells(12, (300, 24))[:, :3].copy()), size=(300, 3))


def _pixel_types(corpus: _Corpus) -> None:
    grey = cells(13)
    corpus.add("black.png", "all black", encode(np.zeros(SIZE, np.uint8), "PNG"))
    corpus.add("white.jpg", "all white", encode(np.full(SIZE, 255, np.uint8), "JPEG"))
    corpus.add("constant16.png", "constant 16-bit PNG", encode(np.full(SIZE, 1234, np.uint16), "PNG"))
    corpus.add("constant16.tif", "constant 16-bit TIFF", tiff(np.full(SIZE, 40000, np.uint16)))
    corpus.add("zero_float.tif", "all-zero float TIFF", tiff(np.zeros(SIZE, np.float32)))
    special = grey.astype(np.float32) * 3.5 - 100.0
    special[0, :6] = [np.nan, np.inf, -np.inf, np.nan, np.inf, -np.inf]
    special[40:, 50:] = np.nan
    corpus.add("nan_inf.tif", "float TIFF with NaN, +inf and -inf pixels", tiff(special))
    corpus.add("all_nan.tif", "float TIFF, every pixel NaN", tiff(np.full(SIZE, np.nan, np.float32)))
    rgb_float = np.stack([grey * 0.001, grey * 0.002, grey * 0.0005], axis=-1).astype(np.float32)
    corpus.add("float_rgb.tif", "3-channel float TIFF", tiff(rgb_float, photometric="rgb"))
    corpus.add("float64_huge.tif", "float64 TIFF spanning +-1e308",
               tiff(np.where(grey > 100, 1e308, -1e308).astype(np.float64)))
    corpus.add("palette.png", "palette PNG", encode(Image.fromarray(grey).convert("P"), "PNG"))
    corpus.add("cmyk.jpg", "CMYK JPEG", encode(Image.fromarray(grey).convert("CMYK"), "JPEG"))
    cmyk = np.stack([np.zeros_like(grey)] * 3 + [255 - grey], axis=-1)  # nuclei where there is no black ink
    corpus.add("cmyk.tif", "CMYK TIFF", tiff(cmyk, photometric="separated"))
    corpus.add("grey_alpha.png", "grey + alpha PNG", encode(Image.fromarray(grey).convert("LA"), "PNG"))
    corpus.add("grey_alpha.tif", "grey + alpha TIFF", tiff(np.stack([grey, np.full_like(grey, 255)], axis=-1),
                                                           photometric="minisblack", extrasamples=["unassalpha"]))
    transparent = np.dstack([grey, grey, grey, np.zeros_like(grey)])
    corpus.add("transparent.png", "RGBA PNG, fully transparent", encode(transparent, "PNG"))
    corpus.add("bilevel.png", "1-bit PNG", encode(Image.fromarray(grey > 128), "PNG"))
    corpus.add("int32.tif", "signed 32-bit TIFF", tiff(grey.astype(np.int32) * 1000 - 50_000))


def _pages_and_frames(corpus: _Corpus) -> None:
    first, second = cells(14), cells(15, (32, 32))
    pages = io.BytesIO()
    with tifffile.TiffWriter(pages) as writer:
        writer.write(first)
        writer.write(second)  # a smaller second page: only the first is read
    corpus.add("pages.tif", "multi-page TIFF (pages of different sizes)", pages.getvalue())
    stack = np.stack([first, 255 - first, first // 2, first // 3, first // 4])
    corpus.add("stack.tif", "5-page stack in one series", tiff(stack, photometric="minisblack"))
    frames = [Image.fromarray(first), Image.fromarray(255 - first)]
    corpus.add("frames.gif", "multi-frame GIF", encode(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    corpus.add("frames.webp", "animated WebP", encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]))


def _names(corpus: _Corpus) -> None:
    png = FORMATS["png"]()
    corpus.add("noyaux été 1.png", "non-ASCII name with spaces", png)
    corpus.add("CELLS.PNG", "upper-case extension", png)
    corpus.add("Scan 03.TIF", "upper-case .TIF with a space", FORMATS["tif"]())
    corpus.add("ядра  двойной пробел.JPEG", "Cyrillic name, double space, .JPEG", FORMATS["jpg"]())
    corpus.add("only bad/empty.gif", "sub-folder of only bad files: empty", b"", ERROR, "the file is empty")
    corpus.add("only bad/cut.webp", "sub-folder of only bad files: truncated",
               FORMATS["webp"]()[:40], ERROR, "damaged or truncated")
    corpus.add("only bad/deeper/text.bmp", "sub-sub-folder: text named .bmp", b"BM but not really", ERROR,
               "not a readable image")
    corpus.add("._CELLS.PNG", "macOS metadata file beside its image", b"\x00\x05\x16\x07 AppleDouble", IGNORED)
    corpus.add("README.txt", "not an image extension", b"notes", IGNORED)
    if sys.platform.startswith("linux"):  # only Linux lets a file name be any bytes
        path = os.fsencode(corpus.folder) + b"/latin1_caf\xe9.png"
        with open(path, "wb") as file:
            file.write(png)
        corpus.cases.append(Case(os.fsdecode(path)[len(str(corpus.folder)) + 1:], "file name not valid UTF-8",
                                 ERROR, "not valid UTF-8"))


def _links(corpus: _Corpus) -> None:
    """A symlink to its own folder (a loop) and one to nowhere; skipped where links can't be made."""
    try:
        os.symlink(".", corpus.folder / "loop", target_is_directory=True)
        (corpus.folder / "only bad" / "up").symlink_to("..", target_is_directory=True)
    except (OSError, NotImplementedError):
        return
    corpus.cases.append(Case("loop", "symlink to its own folder (a loop)", IGNORED))
    corpus.cases.append(Case("only bad/up", "symlink to the parent folder (a loop)", IGNORED))
    try:
        (corpus.folder / "moved away.png").symlink_to(corpus.folder / "gone" / "cells.png")
    except OSError:
        return
    corpus.cases.append(Case("moved away.png", "broken symlink named .png", ERROR, "broken symbolic link"))
