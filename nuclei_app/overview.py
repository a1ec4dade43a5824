"""One pass over a huge image: the strided samples every whole-image decision is made on
(channel, stretch, display), and the field of view on a blank canvas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .block_sources import BlockSource, windows
from .canvas import Box, CanvasSurvey, crop_sample, field_box
from .channels import SAMPLE_SIDE
from .sampling import percentile_stride, side_stride

OVERVIEW_SIDE = 2048        # longest side of the overlay PNG (and of the overview sample)


@dataclass(frozen=True)
class Overview:
    percentile: np.ndarray  # image[::s, ::s] with inference.percentile_sample's stride
    channels: np.ndarray    # image[::c, ::c] with channels._sample's stride (what choose_channel looks at)
    display: np.ndarray     # image[::d, ::d], longest side <= OVERVIEW_SIDE: the overlay's background
    display_stride: int
    content: Box | None     # the field of view inside a blank canvas (canvas.content_box)
    shape: tuple[int, int]  # the image's (height, width)

    @property
    def channels_field(self) -> np.ndarray:
        """``channels`` inside the content box: what ``choose_channel`` looks at."""
        return crop_sample(self.channels, self.content, side_stride(self.shape, SAMPLE_SIDE))

    @property
    def percentile_field(self) -> np.ndarray:
        """``percentile`` inside the content box: what ``preprocess``'s stretch is fitted on."""
        return crop_sample(self.percentile, self.content, percentile_stride(*self.shape))


def survey(source: BlockSource) -> Overview:
    """One pass over the image for the samples every whole-image decision is made on, and
    for the content box inside a blank canvas (as ``canvas.content_box`` finds it)."""
    height, width = source.height, source.width
    strides = (percentile_stride(height, width), side_stride((height, width), SAMPLE_SIDE),
               side_stride((height, width), OVERVIEW_SIDE))
    canvas = CanvasSurvey(source.read(0, 1, 0, width)[0], source.read(height - 1, height, 0, width)[0], height)
    percentile, channels, display = gather_strided(source.read, height, width, strides, source.survey_block,
                                                   canvas.add)
    return Overview(percentile, channels, display, strides[2], field_box(canvas, source.read, percentile),
                    (height, width))


def gather_strided(read: Callable[[int, int, int, int], np.ndarray], height: int, width: int,
                   strides: Sequence[int], block: tuple[int, int],
                   visit: Callable[[np.ndarray, int, int], None] | None = None) -> list[np.ndarray]:
    """``image[::s, ::s]`` for each stride, from one pass of reads of ``block`` (rows, columns);
    ``visit(part, top, left)`` sees every part read."""
    samples: list[np.ndarray | None] = [None] * len(strides)
    for top, bottom, left, right in windows(height, width, block):
        part = read(top, bottom, left, right)
        if visit is not None:
            visit(part, top, left)
        for k, stride in enumerate(strides):
            if samples[k] is None:
                samples[k] = np.empty((-(-height // stride), -(-width // stride)) + part.shape[2:], part.dtype)
            rows, columns = -top % stride, -left % stride  # first rows and columns on the global grid
            piece = part[rows::stride, columns::stride]
            if piece.size:
                y, x = (top + rows) // stride, (left + columns) // stride
                samples[k][y:y + piece.shape[0], x:x + piece.shape[1]] = piece
    return samples
