"""What the web page holds for each image, as data: the inputs, the per-image choices, an
image analysed (whole or block by block) or not, and what they give the downloads (files
built when clicked, the batch table's row, the ZIP's summary.csv row). No Streamlit here:
``app.py`` draws the page. These classes live in the package, not in ``app.py``, which
Streamlit executes anew on every rerun (a class defined there is a new class each time).
"""
from __future__ import annotations

import hashlib
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .batch import ImageRequest
from .blocks import BlockResult
from .calibration import PixelSize, Reading, with_physical_sizes, with_resolution
from .channels import ALL_CHANNELS, AUTO, as_channels, display_rgb, is_grey, network_rgb
from .config import PostprocessSettings
from .figures import MAX_DISPLAY_SIDE
from .image_notes import micrograph_truth_note
from .kinds import kind_tells, weak_kind_note
from .label_files import GroundTruth
from .measure import summary
from .metrics import ImageScores, objects_holding_several
from .overlay import STRIP_ASPECT, draw_overlay, shown_extent, strip_start, view_stride
from .pipeline import Prediction
from .planes import PlaneRequest, ZChoice
from .records import summary_row
from .results import FILE_SUFFIXES, image_csv, image_result_files, unique_names


FORMATS = ("png", "tiff", "rois", "geojson", "intensities")  # every download the CLI can write
PAGE_COLUMN_PX = 700  # about how wide one of two side-by-side images is on a laptop screen


@dataclass(frozen=True)
class InputImage:
    name: str              # safe, unique on this page: the stem of every output file
    label: str             # the file name as the user knows it, for messages
    data: bytes
    key: str               # content digest + occurrence: widget keys and cached results
    truth: bytes | None = None


@dataclass(frozen=True)
class Settings:
    postprocess: PostprocessSettings
    tta: bool | None  # None: the model's default (flips for light-background images)
    style: str
    opacity: float
    stretch: bool = True


@dataclass(frozen=True)
class ImageChoices:
    """Per-image choices: ``diameter`` None = estimate it, ``channel`` 'auto', 'all' or an index,
    ``z`` a Z-stack's plane (``planes``; None: the first, by default)."""
    diameter: float | None = None
    channel: int | str = AUTO
    z: ZChoice = None

    @property
    def key(self) -> tuple:
        # A plain tuple: what the session's caches are keyed by.
        return (self.diameter, self.channel, self.z)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def input_images(files: list[tuple[str, bytes, bytes | None]]) -> list[InputImage]:
    """Page items with names safe for downloads and unique on the page (two 'cells.*' files
    become 'cells' and 'cells_2'), and keys unique even for the same content twice."""
    names = unique_names(name for name, _, _ in files)
    seen: dict[str, int] = {}
    items = []
    for (label, data, truth), name in zip(files, names):
        content = digest(data)
        seen[content] = seen.get(content, 0) + 1
        items.append(InputImage(name, label, data, f"{content}_{seen[content]}", truth))
    return items


def card_title(item: InputImage, width: int, height: int) -> str:
    """An image's card title: its file name and size, and the name its downloads carry where
    that is not the file's own (a user test: two 'cells.png' from two folders had the same
    title, their files 'cells_*' and 'cells_2_*')."""
    name = item.label if item.name == Path(item.label).stem else f"{item.label} (files: {item.name}_…)"
    return f"{name}  ·  {width}×{height}"


def sample_label(stem: str) -> str:
    """'tissue_he' -> 'tissue H&E': a file name can't hold the '&' (a user test read 'he')."""
    return " ".join("H&E" if word == "he" else word for word in stem.split("_"))


def timed(compute: Callable[[], object]) -> Callable[[], tuple[object, float]]:
    """``compute`` returning its result and the seconds it took: cached with the result, the
    ZIP's summary.csv says how long the image took to segment, however often the page reran."""
    def run() -> tuple[object, float]:
        started = time.perf_counter()
        value = compute()
        return value, time.perf_counter() - started
    return run


@dataclass
class Analysis:
    item: InputImage
    image: np.ndarray          # what the user sees: RGB, or the nuclear channel of a stack
    prediction: Prediction
    labels: np.ndarray
    table: pd.DataFrame
    kind: str
    notes: list[str] = field(default_factory=list)  # how the file was read, a diameter that looks wrong
    pixel_size: PixelSize | None = None             # the page's (the file's own unless typed): µm columns
    choices: ImageChoices = field(default_factory=ImageChoices)  # as segmented: the ZIP's settings column
    channels: np.ndarray | None = None  # the image as read (cached anyway): every channel's intensities
    seconds: float | None = None  # to segment it (network and watershed): the ZIP's summary.csv
    truth_scores: ImageScores | None = None   # against the ground truth on its card: the ZIP's scores table

    @property
    def probabilities(self) -> np.ndarray:
        return self.prediction.probabilities


@dataclass
class Failure:
    """An image the page could not segment. Its row in the ZIP's summary.csv says why, as a
    failed input's row does in the CLI's (a user test: the ZIP listed only the images that
    worked, so a later reader could not tell two of six uploads were never analysed)."""
    item: InputImage
    reason: str   # summary.csv's status: what went wrong, without the file's name


@dataclass
class LargeAnalysis:
    """An image over ``AppLimits.max_image_pixels``, segmented block by block as the CLI
    segments huge images: the page keeps its table and a preview; the label TIFF and the
    overlay stay on disk, in a folder removed when the session's results are dropped."""
    item: InputImage
    result: BlockResult
    folder: tempfile.TemporaryDirectory
    pixel_size: PixelSize | None = None  # the page's (the file's own unless typed)
    choices: ImageChoices = field(default_factory=ImageChoices)  # as segmented: the ZIP's settings column
    notes: list[str] = field(default_factory=list)  # how the file was read, the pixel size: as the CLI's
    seconds: float | None = None  # to read, segment and write it block by block

    @property
    def table(self) -> pd.DataFrame:
        return with_physical_sizes(self.result.table, self.pixel_size)

    @property
    def kind(self) -> str:
        return self.result.kind


@dataclass(frozen=True)
class FileFacts:
    """What an upload's header says (no pixel decoded): its pixels (None: unreadable, the
    reader says why), its Z planes, its pixel size."""
    pixels: int | None
    z_planes: int
    pixel_size: Reading


def typed_size(pixel_size: PixelSize | None) -> float | None:
    """The pixel size typed on the page (the CLI's --pixel-size); None where it is the file's or none."""
    return pixel_size.um if pixel_size and pixel_size.source == "given" else None


def plane_request(choices: ImageChoices) -> PlaneRequest:
    """A Z-stack's plane as chosen, judged (for the sharpest) on the channel chosen."""
    return PlaneRequest(choices.z, choices.channel)


COLOUR_NAMES = ("red", "green", "blue")
# Files whose three channels are red, green and blue by their format (a TIFF's may be any stains).
COLOUR_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def is_colour_file(item: InputImage, count: int) -> bool:
    return count == 3 and Path(item.label).suffix.lower() in COLOUR_FORMATS


def channel_name(channel: int | str, count: int, rgb: bool, grey: bool = False) -> str:
    """A channel as the page names it: its number, with its colour in an RGB file (a user
    test: "Channel 2" of an RGB composite read as green); all of them, said as summary.csv
    and --channel say it, with what they are (a user test: the page's "grey" and "RGB" were
    "all" in the files)."""
    if channel == AUTO:
        return "automatic"
    if channel == ALL_CHANNELS:
        return "all (grey)" if grey or count == 1 else "all (RGB)"  # a stack's "all" is refused (check_channel)
    return f"{channel} ({COLOUR_NAMES[channel]})" if rgb else str(channel)


@dataclass(frozen=True)
class PageView:
    """How the page shows an image's results: strided to screen size, and a strip (more than
    ``STRIP_ASPECT`` times as long as wide) by its start, ``overlay.shown_extent``; the
    interactive view pans along the rest."""
    step: int                   # the stride of ``strided``
    window: tuple[slice, slice]  # of the strided view: what the still images show
    note: str                   # for their captions: "" for a whole image
    width: int | str            # st.image's: "stretch", or px for a tall strip's narrow window
    start: int = 0              # px along a strip where its window begins (overlay.strip_start)

    def strided(self, array: np.ndarray) -> np.ndarray:
        return array[::self.step, ::self.step]

    def still(self, array: np.ndarray) -> np.ndarray:
        """The part of the image-sized ``array`` the still images show, strided."""
        return self.strided(array)[self.window]


def page_view(labels: np.ndarray) -> PageView:
    """The view of an image whose labels are ``labels``: a strip's window opens on its nuclei."""
    shape = labels.shape
    step = view_stride(shape, MAX_DISPLAY_SIDE)
    height, width = shown_extent(shape)
    if (height, width) == tuple(shape[:2]):
        return PageView(step, (slice(None), slice(None)), "", "stretch")
    start = strip_start(labels)
    along, tall = (width, False) if width < shape[1] else (height, True)
    span = slice(start // step, -(-(start + along) // step))
    part = f"the first {along} px" if start == 0 else f"px {start}-{start + along}"
    # A tall strip's window fills the column's height, not its width (eight times taller).
    return PageView(step, (span, slice(None)) if tall else (slice(None), span),
                    f"; shown: {part} of {max(shape[:2])}, the interactive view pans along the strip",
                    PAGE_COLUMN_PX // STRIP_ASPECT if tall else "stretch", start)


def used_channel_name(analysis: Analysis | LargeAnalysis) -> str:
    used = segmented_with(analysis)
    count = used.channels if isinstance(used, BlockResult) else as_channels(analysis.channels).shape[-1]
    grey = isinstance(analysis, Analysis) and is_grey(analysis.channels)
    return channel_name(used.channel, count, is_colour_file(analysis.item, count), grey)


def truth_warning(truth: GroundTruth, labels: np.ndarray) -> str | None:
    """Where the ground truth is a binary mask and some of its objects each hold several of the
    nuclei found: touching nuclei merged by the mask understate the scores (a user test: the
    same truth scored mean AP 0.33 as a mask, 0.44 as a label image, and only a tooltip said
    why). Where it is no mask, whether it reads as a label image at all
    (``image_notes.micrograph_truth_note``)."""
    if not truth.from_mask:
        return micrograph_truth_note(truth.labels)
    merged = objects_holding_several(truth.labels, labels)
    if not merged:
        return None
    objects = int(truth.labels.max(initial=0))
    holding = "its one object holds" if objects == 1 else f"{merged} of its {objects} objects each hold"
    return (f"The ground truth is a binary mask, in which touching nuclei are one object: {holding} two or more of "
            "the nuclei found, so where those are touching nuclei the scores are understated. A label image (one id "
            "per nucleus) scores exactly.")


def area_text(area_px: float, pixel_size: PixelSize | None) -> str:
    """An area as the page shows it: µm² where the pixel size is known, else whole px rounded
    half up, as the batch table shows them (a user test: a median of 240.5 px read 240 on the
    card and 241 in the table; Python's format rounds half to even)."""
    if pixel_size:
        return f"{area_px * pixel_size.um ** 2:.1f} µm²"
    return f"{math.floor(area_px + 0.5)} px"


TRUTH_SCORE_COLUMNS = ["image", "file", "mean_ap", "ap50", "iou", "dice", "pixel_accuracy", "n_true", "n_predicted"]


def truth_scores_csv(analyses: list) -> bytes | None:
    """The ZIP's ``ground_truth_scores.csv``: each image compared with a ground truth on the page
    (a sample's, or one uploaded), as its card showed them; None where none was (a user kept only
    a screenshot of the scores)."""
    rows = [{"image": a.item.name, "file": a.item.label, **a.truth_scores.as_dict()}
            for a in analyses if getattr(a, "truth_scores", None) is not None]
    return pd.DataFrame(rows, columns=TRUTH_SCORE_COLUMNS).to_csv(index=False).encode() if rows else None


def file_builders(analysis: Analysis, settings: Settings) -> dict[str, Callable[[], bytes]]:
    """Every download of one image, built only when clicked (no PNG encoding on reruns)."""
    built: dict[str, bytes] = {}

    def build_all() -> dict[str, bytes]:  # once for all of this image's files (ZIP included)
        if not built:
            overlay = draw_overlay(analysis.image, analysis.labels, style=settings.style, opacity=settings.opacity,
                                   stretch=settings.stretch)
            built.update(image_result_files(analysis.item.name, analysis.labels, overlay, analysis.table, FORMATS,
                                            pixel_size=analysis.pixel_size, channels=analysis.channels))
        return built
    names = [analysis.item.name + suffix for suffix in FILE_SUFFIXES]
    return {name: (lambda name=name: build_all()[name]) for name in names}


def large_file_builders(analysis: LargeAnalysis) -> dict[str, Callable[[], bytes]]:
    name, files = analysis.item.name, analysis.result.files
    # Written with the file's own pixel size; the page's (typed) is set on the way out.
    return {f"{name}_labels.tif": lambda: with_resolution(files["labels"].read_bytes(), analysis.pixel_size),
            f"{name}_overlay.png": files["overlay"].read_bytes,
            f"{name}_measurements.csv": lambda: image_csv(name, analysis.table),
            f"{name}_intensities.csv": files["intensities"].read_bytes}


def headline_numbers(analysis: Analysis | LargeAnalysis) -> dict:
    """Count, coverage and sizes from the table (a large image's labels are not in memory);
    coverage of the field of view where it lies on a blank canvas (a user test: 11.6 % of the
    canvas for a field's 31.8 %, beside a note that the canvas holds no nuclei)."""
    result = analysis.result if isinstance(analysis, LargeAnalysis) else None
    field = result.content if result else analysis.prediction.field
    height, width = field.shape if field is not None else (
        (result.height, result.width) if result else analysis.labels.shape)
    return summary(analysis.table, height * width)


def segmented_with(analysis: Analysis | LargeAnalysis) -> Prediction | BlockResult:
    """What records the diameter, its source and the channel the image was segmented with."""
    return analysis.result if isinstance(analysis, LargeAnalysis) else analysis.prediction


def page_row(analysis: Analysis | LargeAnalysis) -> dict:
    """One image's headline numbers, with units, as the card shows them (coverage in %)."""
    stats = headline_numbers(analysis)
    used = segmented_with(analysis)
    return {"Image": analysis.item.name, "File": analysis.item.label, "Nuclei": stats["count"],
            "Coverage (%)": 100 * stats["coverage"], "Mean area (px)": stats["mean_area"],
            "Median area (px)": stats["median_area"], "Area SD (px)": stats["std_area"],
            "Diameter used (px)": used.diameter, "Channel": used_channel_name(analysis),
            # Text: a number column shows a missing size as the word "None" (a user test).
            "Pixel size (µm)": f"{analysis.pixel_size.um:g}" if analysis.pixel_size else ""}


def image_request(settings: Settings, analysis: Analysis | LargeAnalysis) -> ImageRequest:
    """The page's settings for one image as the CLI would be asked for them (summary.csv's
    settings column; a pixel size typed is --pixel-size), as it was segmented: the ZIP is
    built when clicked, outside the page's run, where the widgets' state can't be read."""
    choices = analysis.choices
    return ImageRequest(settings.postprocess, tta=settings.tta, diameter=choices.diameter, channel=choices.channel,
                        pixel_size=typed_size(analysis.pixel_size), z_plane=choices.z)


def shown_image(channels: np.ndarray, used: int | str, asked: int | str) -> np.ndarray:
    """What the page shows under the overlay: a channel picked by hand as the network saw it
    (a trial: the cytoplasm channel of a 3-channel stack, picked, was shown as the three
    channels' colour composite, so what was segmented could not be judged by eye); otherwise
    as ``channels.display_rgb`` (an RGB composite as its colours, another stack's nuclear
    channel)."""
    return network_rgb(channels, used) if isinstance(asked, int) else display_rgb(channels, used)


def quiet_and_count(analysis: Analysis | LargeAnalysis) -> tuple[bool, int]:
    """Whether the field was noise alone, and how many nuclei: what says if its kind means anything."""
    if isinstance(analysis, LargeAnalysis):
        return analysis.result.quiet, analysis.result.count
    return analysis.prediction.quiet, int(analysis.labels.max(initial=0))


def shows_kind(analysis: Analysis | LargeAnalysis) -> bool:
    """Whether its kind means anything (``kinds.kind_tells``): not for an empty field of noise."""
    return kind_tells(*quiet_and_count(analysis))


def record_row(analysis: Analysis | LargeAnalysis, scores: dict) -> dict:
    """The CLI's summary.csv row for one image, so that the ZIP's summary.csv reads (and
    concatenates) like a batch run's; ``scores``: the model's ``scores_for_new_images``, whose
    caution for a weak kind ends its notes as the CLI's do (the page shows it apart)."""
    caution = weak_kind_note(scores, analysis.kind, *quiet_and_count(analysis))
    used = segmented_with(analysis)
    result = analysis.result if isinstance(analysis, LargeAnalysis) else None
    height, width = (result.height, result.width) if result else analysis.labels.shape
    row = summary_row(analysis.item.label, analysis.item.name, width=width, height=height,
                      nuclei=headline_numbers(analysis)["count"], diameter=used.diameter,
                      source=used.diameter_source, channel=used.channel, seconds=analysis.seconds,
                      notes=analysis.notes + ([caution] if caution else []), pixel_size=analysis.pixel_size,
                      kind=analysis.kind)
    # The upload's size, as the CLI stamps its inputs (a browser gives no modification time).
    return {**row, "file_bytes": str(len(analysis.item.data))}
