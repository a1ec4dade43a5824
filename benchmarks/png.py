"""The results' PNG writer against Pillow's encoder at the same zlib level, on DSB overlays.

    python -m benchmarks.png [--data FOLDER] [--every 60]

Every ``--every``-th image of the data folder, its truth outlined as the CLI draws its
overlays; each encoder's median time of five and its file size.
"""
from __future__ import annotations

import argparse
import io
import statistics
import time

from PIL import Image

from nuclei_app.channels import display_rgb
from nuclei_app.imageio import read_channels, to_uint8
from nuclei_app.machine import describe_machine
from nuclei_app.overlay import draw_overlay
from nuclei_app.png import COMPRESS_LEVEL, png_bytes
from train.data import DEFAULT_DATA_DIR, find_samples, read_instance_labels


def pillow_png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=COMPRESS_LEVEL)
    return buffer.getvalue()


def median_ms(encode, pixels) -> tuple[float, int]:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        encoded = encode(pixels)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, len(encoded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.png", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA_DIR)
    parser.add_argument("--every", type=int, default=60)
    args = parser.parse_args(argv)
    print(f"machine: {describe_machine()}")
    smaller = total = 0
    for files in find_samples(args.data)[::args.every]:
        channels = read_channels(files.image_path)
        overlay = to_uint8(draw_overlay(display_rgb(channels, 0), read_instance_labels(files), opacity=1.0))
        (ours, our_size), (pillows, pillow_size) = median_ms(png_bytes, overlay), median_ms(pillow_png, overlay)
        smaller, total = smaller + (our_size <= pillow_size), total + 1
        print(f"{files.sample_id[:10]} {overlay.shape[1]:>4}x{overlay.shape[0]:<4} png.py {ours:5.1f} ms "
              f"{our_size / 1024:5.0f} KB | Pillow {pillows:5.1f} ms {pillow_size / 1024:5.0f} KB")
    print(f"png.py's file no larger on {smaller} of {total} overlays")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
