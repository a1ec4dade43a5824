"""Nuclei: drop a microscopy image, see every nucleus. Streamlit page layout and widgets only;
all image work happens in ``nuclei_app``."""
from __future__ import annotations

import os
import tempfile
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import streamlit as st

from nuclei_app.batch import failure_status, settings_text
from nuclei_app.blocks import BlockResult, segment_upload_in_blocks
from nuclei_app.calibration import (GIVE_ONE, PLAUSIBLE_UM, UM_COLUMNS, PixelSize, Reading, read_pixel_size,
                                    with_physical_sizes)
from nuclei_app.canvas import canvas_note
from nuclei_app.channels import (ALL_CHANNELS, AUTO, COLOUR_COUNTS, as_channels, choose_channel, intensity_image,
                                 is_grey)
from nuclei_app.config import BUNDLED_MODEL_DIR, IMAGE_SUFFIXES, SAMPLES_DIR, AppLimits, ReadLimits
from nuclei_app.diameter_check import image_notes
from nuclei_app.figures import area_histogram, overlay_figure
from nuclei_app.imageio import ImageReadError, declared_layout, read_channels
from nuclei_app.kinds import KIND_NAMES, kind_confidence
from nuclei_app.label_files import read_ground_truth
from nuclei_app.measure import measure_nuclei
from nuclei_app.memory import limit_arenas, map_large_blocks, reap_closed_sessions, start_janitor
from nuclei_app.metrics import ImageScores, image_scores
from nuclei_app.model import ModelLoadError, NucleiModel
from nuclei_app.overlay import (STYLES, comparison_overlay, display_stride, draw_overlay, palette_for, probability_picture,
                                to_display)
from nuclei_app.page import (PAGE_COLUMN_PX, Analysis, Failure, FileFacts, ImageChoices, InputImage, LargeAnalysis,
                             PageView, Settings, area_text, card_title, channel_name, file_builders, headline_numbers,
                             image_request, input_images, is_colour_file, large_file_builders, page_row, page_view,
                             plane_request, record_row, sample_label, segmented_with, shown_image, shows_kind, timed,
                             truth_scores_csv, truth_warning, typed_size, used_channel_name)
from nuclei_app.pipeline import Prediction, Segmentation, labels_for, predict, settings_for
from nuclei_app.planes import FOCUS, MAX, OTHER_PLANES, PlaneRequest, ZChoice
from nuclei_app.records import SUMMARY_COLUMNS, formats_among, summary_row, with_settings
from nuclei_app.results import FILE_SUFFIXES, combined_measurements, csv_bytes, zip_bytes
from nuclei_app.sources import describe, resolve_model
from nuclei_app.validation_record import validation_label
from nuclei_app.wording import plural

LIMITS = AppLimits()


# -- model ----------------------------------------------------------------------------
def secret(name: str) -> str | None:
    try:
        return st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets file at all is the normal local case
        return None


def configured_source() -> str | None:
    """Streamlit secrets (deployed app), else the environment, else the bundled model."""
    token = secret("HF_TOKEN")
    if token:
        os.environ.setdefault("HF_TOKEN", token)
    return secret("NUCLEI_MODEL") or os.environ.get("NUCLEI_MODEL") or None


@st.cache_resource
def memory_janitor():
    """Once per process: ended sessions' memory goes back to the system (nuclei_app.memory)."""
    limit_arenas()
    map_large_blocks()
    return start_janitor(chores=(reap_closed_sessions,))


@st.cache_resource(show_spinner="Loading the model…")
def load_model(source: str | None) -> NucleiModel:
    return resolve_model(source)  # loaded once per process, shared by every session


def model_panel(model: NucleiModel) -> None:
    with st.sidebar.expander("Model", expanded=False):
        # A biologist needs which model and which version, not the server's folder (a user test).
        shown = "the bundled model" if model.folder.resolve() == BUNDLED_MODEL_DIR.resolve() else f"`{describe(model)}`"
        st.markdown(f"**In use:** {shown}, version `{model.digest()}`",
                    help="The version is the model's content digest, which the ZIP's summary.csv records.")
        metrics = model.scores_for_new_images.get("validation", {})
        if metrics:
            # A markdown table: it fits the sidebar's width, where a dataframe scrolls sideways.
            rows = "\n".join(f"| {kind} | {m['images']} | {m['mean_ap']:.2f} | {m['ap50']:.2f} |"
                             for kind, m in metrics.items())
            st.markdown(f"{validation_label(model.metadata)}\n\n"
                        "| kind | images | mean AP | AP@0.5 |\n|---|--:|--:|--:|\n" + rows)
        elif model.scored_on_training_image:
            st.caption(validation_label(model.metadata) + ": it has no score for new images.")


# -- settings ---------------------------------------------------------------------------
TTA_CHOICES = {"auto": "Automatic", "on": "On", "off": "Off"}
TTA_SETTINGS = {"auto": None, "on": True, "off": False}
TTA_DEFAULT = "auto"


def default_settings(model: NucleiModel) -> dict:
    tuned = model.postprocess_settings
    # min_size None: the model's tuned size, scaled to each image's nuclei (a number typed in
    # counts the image's own pixels; PostprocessSettings.min_size_in_image_pixels).
    return {"threshold": float(tuned.threshold), "min_size": None,
            "tta": TTA_DEFAULT, "style": "outlines", "opacity": 0.6, "stretch": True}


def reset_settings(defaults: dict) -> None:
    for key, value in defaults.items():
        st.session_state[key] = value


def settings_ui(model: NucleiModel) -> Settings:
    defaults = default_settings(model)
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    sidebar = st.sidebar
    sidebar.header("Settings")
    sidebar.slider("Probability threshold", 0.05, 0.95, step=0.05, key="threshold",
                   help=f"Pixels above this nucleus probability are foreground. Tuned value: {defaults['threshold']}")
    tuned = model.postprocess_settings
    at_scale = f" at its {model.diameter:g} px nuclei, scaled to each image's nuclei" if model.diameter else ""
    sidebar.number_input("Minimum nucleus size (px)", min_value=0, max_value=100_000, step=1, key="min_size",
                         placeholder="automatic",
                         help="Objects smaller than this many of the image's pixels (as the table's areas) are "
                              f"dropped as noise. Empty: the model's tuned size, {tuned.min_size} px{at_scale}.")
    sidebar.radio("Flip test-time augmentation", list(TTA_CHOICES), key="tta", horizontal=True,
                  format_func=TTA_CHOICES.get,
                  help="Averages 4 flipped predictions: smoother edges, 4x the network's time. Automatic: on for "
                       "light-background images (brightfield, H&E), where it helps most, off for fluorescence.")
    # Short labels: a longer third one wrapped to a line of its own, where it read as a
    # setting apart from the other two (a user test).
    sidebar.radio("Overlay", STYLES, key="style", horizontal=True,
                  format_func={"outlines": "Outlines", "filled": "Filled", "instances": "Coloured"}.get,
                  help="Outlines: each nucleus's edge. Filled: the nuclei in one colour. Coloured: each nucleus "
                       "in a colour of its own, which tells touching nuclei apart.")
    sidebar.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="opacity")
    sidebar.toggle("Stretch contrast for display", key="stretch",
                   help="Shows each image stretched between its 0.5th and 99.5th intensity percentiles, so dim "
                        "and 16-bit images are visible. Off: the image as stored. Segmentation is not affected.")
    sidebar.button("Reset to the model's defaults", on_click=reset_settings, args=(defaults,))
    typed = st.session_state.min_size
    postprocess = settings_for(model, threshold=st.session_state.threshold, min_size=None if typed is None else int(typed))
    return Settings(postprocess, TTA_SETTINGS[st.session_state.tta], st.session_state.style, st.session_state.opacity,
                    st.session_state.stretch)


# -- inputs -----------------------------------------------------------------------------
def sample_paths() -> list[Path]:
    return sorted(p for p in (SAMPLES_DIR / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


FORMATS_TEXT = "PNG, JPEG, TIFF (8/16-bit, multi-channel stacks), BMP, GIF, WebP"


def inputs_ui() -> list[InputImage]:
    limit = st.get_option("server.maxUploadSize")
    upload_tab, samples_tab = st.tabs(["Upload images", "Sample images"])
    with upload_tab:
        uploads = st.file_uploader(
            "Drop microscopy images here", accept_multiple_files=True,
            type=[s.lstrip(".") for s in IMAGE_SUFFIXES],
            help=f"{FORMATS_TEXT}; greyscale or colour; up to {limit} MB per file, {LIMITS.max_images} images and "
                 f"{LIMITS.max_page_pixels / 1e6:.0f} megapixels at once. Images over "
                 f"{LIMITS.max_image_pixels / 1e6:.0f} megapixels are segmented block by block and shown as a "
                 f"reduced overview: TIFFs up to {LIMITS.max_blockwise_pixels / 1e6:.0f} megapixels, other formats "
                 f"up to {ReadLimits().max_pixels / 1e6:.0f}.")
        st.caption(f"{FORMATS_TEXT} · up to {limit} MB per file and {LIMITS.max_blockwise_pixels / 1e6:.0f} "
                   f"megapixels per TIFF ({ReadLimits().max_pixels / 1e6:.0f} other formats), {LIMITS.max_images} "
                   "images at once · images stay on this server only while the page is "
                   "open.")
    with samples_tab:
        chosen = samples_gallery()
    files = [(u.name, u.getvalue(), None) for u in uploads or []]
    for path in chosen:
        truth_path = SAMPLES_DIR / "ground_truth" / path.name
        files.append((path.name, path.read_bytes(), truth_path.read_bytes() if truth_path.exists() else None))
    return input_images(files)


def samples_gallery() -> list[Path]:
    # Whose validation images they are: another model may have trained on them (a trial's tiny model had).
    st.caption("Images from DSB2018 (CC0) with their ground truth, never trained on by the bundled model: tick one "
               "or more.")
    paths = sample_paths()
    columns = st.columns(len(paths))
    chosen = []
    for column, path in zip(columns, paths):
        with column:
            st.image(sample_thumbnail(str(path)), width="stretch")
            if st.checkbox(sample_label(path.stem), key=f"sample_{path.stem}"):
                chosen.append(path)
    return chosen


@st.cache_data(show_spinner=False)
def sample_thumbnail(path: str, side: int = 240) -> np.ndarray:
    """A square centre crop: thumbnails of one height whatever the samples' shapes."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.fit(image.convert("RGB"), (side, side)))


# -- per-session result cache --------------------------------------------------------------
def session_cached(item: InputImage, key: tuple, compute):
    """Results of this session, per image on the page: moving a display slider never
    recomputes, however many images there are. Each image keeps its few latest results
    (an LRU of ``AppLimits.results_per_image``); images no longer on the page are dropped
    (``drop_unshown``), so memory follows what the page shows."""
    cache: OrderedDict = st.session_state.setdefault("_results", {}).setdefault(item.key, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > LIMITS.results_per_image:
        cache.popitem(last=False)
    return value


def drop_unshown(items: list[InputImage]) -> None:
    results = st.session_state.setdefault("_results", {})
    for key in set(results) - {item.key for item in items}:
        del results[key]


def prediction_for(model: NucleiModel, item: InputImage, image: np.ndarray, settings: Settings,
                   choices: ImageChoices, position: str) -> tuple[Prediction, float]:
    """The prediction, and the seconds it took once the model was this session's."""
    def compute() -> tuple[Prediction, float]:
        # One segmentation at a time on the shared model (NucleiModel.in_turn): say so when
        # another session has it.
        bar = st.progress(0.0, text=f"{position}Segmenting {item.label}…")
        with model.in_turn(lambda: bar.progress(0.0, text=f"{position}Waiting for another segmentation to finish…")):
            started = time.perf_counter()
            result = predict(model, image, tta=settings.tta, diameter=choices.diameter, channel=choices.channel,
                             progress=lambda done, total: bar.progress(
                                 done / total, text=f"{position}Segmenting {item.label}: tile {done} of {total}"))
            seconds = time.perf_counter() - started
        bar.empty()
        return result, seconds
    # Keys name what they hold: a session kept across a reload of this file finds none of the
    # older entries, which held the prediction alone.
    return session_cached(item, ("timed prediction and kind", model.source, settings.tta, choices.key), compute)


def labels_cached(item: InputImage, prediction: Prediction, settings: Settings, choices: ImageChoices,
                  model: NucleiModel) -> tuple[np.ndarray, float]:
    """The labels, and the seconds the watershed took."""
    def compute():  # the watershed needs no turn on the model: sessions run it side by side
        return labels_for(model, prediction, settings.postprocess)
    return session_cached(item, ("timed labels", model.source, settings.tta, choices.key, settings.postprocess),
                          timed(compute))


# -- results ----------------------------------------------------------------------------
def failed(item: InputImage, reason: str, shown: str | None = None) -> Failure:
    """Shows the problem on the image's card (``shown``, or the file and ``reason``)."""
    st.error(shown or f"**{item.label}** was not processed: {reason}")
    return Failure(item, reason)


class PageBudget:
    """Pixels the images on this page hold together (``AppLimits.max_page_pixels``)."""

    def __init__(self) -> None:
        self.used = 0

    def refusal(self, item: InputImage, channels: np.ndarray) -> str | None:
        """Why the image is not segmented on this page (None: it is, and counts from now)."""
        pixels = channels.shape[0] * channels.shape[1]
        if self.used + pixels > LIMITS.max_page_pixels:
            st.session_state.get("_results", {}).pop(item.key, None)  # don't keep what isn't shown
            return (f"with it this page would hold {(self.used + pixels) / 1e6:.0f} megapixels, over the "
                    f"{LIMITS.max_page_pixels / 1e6:.0f} a page may hold on this shared server. Remove other "
                    "images, or use the command line for large batches.")
        self.used += pixels
        return None


APP_READ_LIMITS = ReadLimits(max_pixels=LIMITS.max_image_pixels)


# The readers' notes advise the command line's options; the page names its own controls.
CHOICES_EXPANDER = "Nucleus diameter, channel and pixel size"
PAGE_ADVICE = {OTHER_PLANES: "another Z plane, the sharpest or their maximum projection can be chosen (Z plane, "
                             f"under {CHOICES_EXPANDER})",
               GIVE_ONE: f"type the right size under {CHOICES_EXPANDER} to measure in µm"}


def page_note(note: str) -> str:
    for cli, page in PAGE_ADVICE.items():
        note = note.replace(cli, page)
    return note


def read_with_notes(item: InputImage, plane: PlaneRequest) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    return read_channels(item.data, name=item.label, limits=APP_READ_LIMITS, notes=notes, plane=plane), notes


def chosen_z(item: InputImage) -> ZChoice:
    """The Z plane the image's control holds (read before the control is drawn: the image is
    read first); None, the first plane, until one is chosen, as the CLI's default."""
    return st.session_state.get(f"z_plane_{item.key}")


def analyse(model: NucleiModel, item: InputImage, settings: Settings, budget: PageBudget,
            position: str = "") -> Analysis | LargeAnalysis | Failure:
    pixels = file_facts(item).pixels
    if pixels is not None and pixels > LIMITS.max_image_pixels:
        return analyse_large(model, item, settings, pixels, position)
    try:
        channels, notes = plane_image(item, plane_request(current_choices(item)))
    except ImageReadError as error:  # the reader's message names the file and says what to do
        return failed(item, failure_status(error), f"Skipped. {error}")
    refusal = budget.refusal(item, channels)
    if refusal:
        return failed(item, refusal)
    height, width = channels.shape[:2]
    st.subheader(card_title(item, width, height))
    reading = file_facts(item).pixel_size
    notes_area = st.container()  # above the controls, filled once the pixel size field is read
    choices, pixel_size = image_choices_ui(item, model, as_channels(channels).shape[-1], reading, channels)
    # In the page's words on the page and in the ZIP's summary.csv alike.
    notes = [page_note(note) for note in notes + reading.notes(typed_size(pixel_size))]
    for note in notes:  # how the file was read: the plane of a Z-stack, ...
        notes_area.info(f"{item.label}: {note}.")
    try:
        prediction, predicted_in = prediction_for(model, item, channels, settings, choices, position)
    except ValueError as error:  # e.g. a channel the image does not have
        return failed(item, failure_status(error), f"**{item.label}**: {error}")
    labels, labelled_in = labels_cached(item, prediction, settings, choices, model)
    # The CLI's notes, in the page's words. Cached only where the diameter was given (a given
    # one is checked against the image's blob estimate; the cache holds few results per
    # image): an automatic one is checked from the diameter alone.
    warnings_for = lambda: image_notes(model, channels, Segmentation(prediction, labels),  # noqa: E731
                                       advice=APP_DIAMETER_ADVICE, blocks_advice=APP_BLOCKS_ADVICE, canvas=False,
                                       caution=False, asked_channel=choices.channel)
    warnings = session_cached(item, ("image notes", model.source, settings.tta, choices.key, settings.postprocess),
                              warnings_for) if choices.diameter else warnings_for()
    # Where a blank canvas was left out: information, as the notes on how the file was read.
    field_notes = list(filter(None, [canvas_note(prediction.field, labels.shape)]))
    for note in field_notes:
        st.info(f"**{item.label}**: {note[0].upper()}{note[1:]}.")
    for warning in warnings:
        st.warning(f"**{item.label}**: {warning[0].upper()}{warning[1:]}.", icon="⚠️")
    used = prediction.channel
    image = shown_image(channels, used, choices.channel)
    intensity = intensity_image(channels, used)
    table = session_cached(item, ("table", model.source, settings.tta, choices.key, settings.postprocess),
                           lambda: measure_nuclei(labels, intensity, prediction.field))
    return Analysis(item, image, prediction, labels, with_physical_sizes(table, pixel_size), prediction.kind,
                    notes + field_notes + warnings, pixel_size, choices, channels, predicted_in + labelled_in)


def file_facts(item: InputImage) -> FileFacts:
    """Read once per image, in one of its cache's slots."""
    return session_cached(item, ("header",),
                          lambda: FileFacts(*declared_layout(item.data), read_pixel_size(item.data)))


def plane_version(plane: PlaneRequest) -> tuple:
    """What the image read depends on: the plane, and the channel only where it picks the sharpest."""
    return plane.z, plane.channel if plane.z == FOCUS else None


def automatic_channel(item: InputImage, channels: np.ndarray) -> int | str:
    """``choose_channel`` of the image as read, once per plane read: 37 ms on a 2048x2048
    RGB image, not to be paid on every rerun (a slider's drag) for every image."""
    version = plane_version(plane_request(current_choices(item)))
    return session_cached(item, ("automatic channel", version), lambda: choose_channel(channels))


def plane_image(item: InputImage, plane: PlaneRequest) -> tuple[np.ndarray, list[str]]:
    """The image read at the plane chosen, and its notes: one slot per image, replaced when
    the plane changes (each plane read is a whole float image: the page's memory budget
    counts one per image)."""
    version = plane_version(plane)
    stored = session_cached(item, ("image",), lambda: (version, *read_with_notes(item, plane)))
    if stored[0] != version:
        st.session_state["_results"][item.key].pop(("image",))
        stored = session_cached(item, ("image",), lambda: (version, *read_with_notes(item, plane)))
    return stored[1], stored[2]


APP_DIAMETER_ADVICE = ("Type it in pixels (not µm), or turn off \"Set the nucleus diameter by hand\" to have it "
                       "estimated")
APP_BLOCKS_ADVICE = "the command line segments it block by block at the full scale: `--block-size 2048`"


def analyse_large(model: NucleiModel, item: InputImage, settings: Settings, pixels: int,
                  position: str) -> LargeAnalysis | Failure:
    if pixels > LIMITS.max_blockwise_pixels:
        return failed(item, f"{pixels / 1e6:.0f} megapixels, over the {LIMITS.max_blockwise_pixels / 1e6:.0f} "
                            "megapixels this shared web app segments (a decompression bomb, or an image too large for "
                            "this server). The command line reads TIFFs of any size block by block: "
                            "`python -m nuclei_app segment FILE --out DIR`.")
    choices = current_choices(item)
    reading = file_facts(item).pixel_size

    def compute() -> tuple[BlockResult, tempfile.TemporaryDirectory]:
        folder = tempfile.TemporaryDirectory(prefix="nuclei_app_")
        bar = st.progress(0.0, text=f"{position}Segmenting {item.label} block by block…")
        try:
            result = segment_upload_in_blocks(
                model, item.data, item.label, folder.name, item.name, settings.postprocess, choices.diameter,
                choices.channel, settings.tta, progress=lambda done, total: bar.progress(
                    done / total, text=f"{position}Segmenting {item.label} block by block: block {done} of {total}"),
                pixel_size=reading.size, plane=plane_request(choices), intensities=True)
        finally:
            bar.empty()
        return result, folder
    try:
        # The cache holds the block-wise result and its folder; the LargeAnalysis is built on
        # every run around them, with the pixel size and notes the page has now.
        key = ("timed blocks, intensities, kind", model.source, settings.tta, choices.key, settings.postprocess)
        (result, folder), seconds = session_cached(item, key, timed(compute))
    except ImageReadError as error:
        return failed(item, failure_status(error), f"Skipped. {error}")
    except ValueError as error:  # e.g. a channel the image does not have
        return failed(item, failure_status(error), f"**{item.label}**: {error}")
    st.subheader(card_title(item, result.width, result.height))
    notes_area = st.container()
    _, pixel_size = image_choices_ui(item, model, result.channels, reading)
    notes = [page_note(note) for note in result.notes + reading.notes(typed_size(pixel_size))]
    for note in notes:
        notes_area.info(f"{item.label}: {note}.")
    return LargeAnalysis(item, result, folder, pixel_size, choices, notes, seconds)


def large_result_ui(analysis: LargeAnalysis, model: NucleiModel) -> None:
    result, item = analysis.result, analysis.item
    headline_ui(analysis)
    confidence_ui(analysis, model)
    blocks = "one block" if result.blocks == 1 else f"{result.blocks} overlapping blocks"
    st.info(f"A large image: segmented block by block ({blocks}), as the command line does, so that it fits "
            "this server's memory. The page shows a reduced overview, with outlines whatever the overlay style "
            "(the overlay PNG is that overview); the label TIFF has every pixel. Changing the threshold, minimum "
            "size or TTA segments it again. ImageJ ROIs and QuPath GeoJSON are not made here for images this large "
            "(the command-line tool makes them).", icon="ℹ️")
    st.image(result.files["overlay"].read_bytes(), width="stretch",
             caption=f"{plural(result.count, 'nucleus', 'nuclei')} (reduced overview)")
    measurements_ui(analysis)
    downloads_ui(item, large_file_builders(analysis), {"_overlay.png": "Overlay PNG (reduced)"})


def image_choices_ui(item: InputImage, model: NucleiModel, count: int, reading: Reading,
                     channels: np.ndarray | None = None) -> tuple[ImageChoices, PixelSize | None]:
    """Per-image scale and channel controls (both default to automatic), and the pixel size
    (the file's own by default). ``channels``: the pixels, for small previews of each
    channel (None: no previews)."""
    with st.expander(CHOICES_EXPANDER, expanded=False):
        diameter = None
        if model.diameter is not None:
            by_hand = st.toggle("Set the nucleus diameter by hand", key=f"diameter_manual_{item.key}",
                                help="By default the diameter is estimated for each image. Set it when you know "
                                     "it, or when the nuclei found look fragmented (diameter too small) or "
                                     "merged (too large).")
            if by_hand:
                diameter = float(st.number_input("Nucleus diameter (px)", 3.0, 500.0, step=1.0,
                                                 key=f"diameter_{item.key}",
                                                 value=st.session_state.get(f"estimate_{item.key}", model.diameter)))
        else:
            st.caption("This model records no training diameter: images are segmented at their own scale.")
        channel = AUTO
        if count > 1:
            rgb = is_colour_file(item, count)
            # The automatic choice named, where the pixels are here (a user test: the picker
            # said "Automatic" without saying which channel that was).
            automatic = "Automatic" if channels is None else \
                f"Automatic: channel {channel_name(automatic_channel(item, channels), count, rgb, is_grey(channels))}"
            # A 3-channel TIFF may be an RGB image or a stack of three stains (a trial: a
            # fluorescence stack was offered "All colours (H&E, brightfield)").
            names = {AUTO: automatic, ALL_CHANNELS: "All colours (H&E, brightfield)" if rgb else
                     "All three as colours (an RGB image: H&E, brightfield)"}
            colours = [ALL_CHANNELS] if count in COLOUR_COUNTS else []  # a stack's "all" would be its first
            channel = st.selectbox("Channel holding the nuclei", [AUTO] + colours + list(range(count)),
                                   key=f"channel_{item.key}",
                                   format_func=lambda c: names.get(c, f"Channel {channel_name(c, count, rgb)}"),
                                   help="Channels are numbered from 0, as in the command line's --channel.")
            if channels is not None:
                previews = st.columns(min(count, 8))
                for index, column in enumerate(previews):
                    column.image(to_display(screen_view(channels[..., index], 160)),
                                 caption=f"Channel {channel_name(index, count, rgb)}", width="stretch", clamp=True)
        z_plane_ui(item)
        pixel_size = pixel_size_ui(item, reading)
    return ImageChoices(diameter, channel, chosen_z(item)), pixel_size


Z_NAMES = {FOCUS: "The sharpest plane", MAX: "Maximum-intensity projection"}


def z_plane_ui(item: InputImage) -> None:
    """For a Z-stack: which plane is segmented (its value is read by ``chosen_z``)."""
    count = file_facts(item).z_planes
    if count > 1:
        st.selectbox("Z plane", list(range(count)) + [FOCUS, MAX], key=f"z_plane_{item.key}", index=None,
                     placeholder="Plane 0, the first (default)", format_func=lambda z: Z_NAMES.get(z, f"Plane {z}"),
                     help=f"A stack of {count} Z planes: the network segments one 2-D image. The sharpest plane is "
                          "judged by its edges; the projection shows every nucleus at its brightest, and merges those "
                          "that lie above one another.")


PIXEL_SIZE_DECIMALS = 4  # shown in the field; a file's value within its rounding is the file's


def pixel_size_ui(item: InputImage, reading: Reading) -> PixelSize | None:
    """The side of a pixel in µm, for measurements in µm: the file's own (OME, ImageJ, ...)
    filled in; empty where the file has none, and then measurements are in pixels only."""
    found = reading.size
    low, high = PLAUSIBLE_UM
    value = st.number_input("Pixel size (µm)", min_value=low, max_value=high, step=0.01,
                            format=f"%.{PIXEL_SIZE_DECIMALS}f",
                            key=f"pixel_size_{item.key}", value=found.um if found else None,
                            placeholder="unknown: measurements in pixels only",
                            help=(f"From the file: {reading.said}. " if found else
                                  "The file records none that can be used (PNG and JPEG never do). ")
                            + "Type the side of one pixel in µm to measure in µm (e.g. 0.65 for a 20x objective "
                              "on a 13 µm camera pixel).")
    if value is None:
        return None
    if found and abs(value - found.um) <= 0.5 * 10 ** -PIXEL_SIZE_DECIMALS:  # as shown: unchanged
        return found
    return PixelSize(float(value), "given")


def current_choices(item: InputImage) -> ImageChoices:
    """The choices image_choices_ui will show, read before it is drawn (its widgets keep
    their values under their keys): a large image is segmented first, and only then is its
    channel count known for the picker."""
    state = st.session_state
    # Just switched to manual: the number field shows the estimate until it is edited.
    manual = state.get(f"diameter_{item.key}", state.get(f"estimate_{item.key}"))
    diameter = manual if state.get(f"diameter_manual_{item.key}") else None
    return ImageChoices(None if diameter is None else float(diameter), state.get(f"channel_{item.key}", AUTO),
                        chosen_z(item))


def screen_view(array: np.ndarray, max_side: int = 1200) -> np.ndarray:
    """A strided view for showing on the page: no browser shows more pixels in a column,
    and a view costs no memory (downloads keep the full resolution)."""
    step = display_stride(array.shape, max_side)
    return array[::step, ::step]


def pannable_chart(picture: np.ndarray, analysis: Analysis, view: PageView, key: str) -> None:
    """``picture`` (drawn on ``view.strided``) as the zoomable figure, hovering the nuclei."""
    st.plotly_chart(overlay_figure(picture, analysis.table, step=view.step, shape=analysis.labels.shape,
                                   start=view.start),
                    width="stretch", config={"scrollZoom": True, "displaylogo": False}, key=key)


def headline_ui(analysis: Analysis | LargeAnalysis) -> None:
    stats = headline_numbers(analysis)
    used = segmented_with(analysis)
    # Two rows of three: six abreast cut the values short at a laptop's width with the sidebar
    # open (a user test at 1280 px: "Median area 43.0 …", the µm² lost).
    columns = st.columns(3) + st.columns(3)
    columns[0].metric("Nuclei", stats["count"])
    columns[1].metric("Coverage", f"{100 * stats['coverage']:.1f} %")
    if stats["count"]:
        median, mean, sd = (area_text(stats[key], analysis.pixel_size)
                            for key in ("median_area", "mean_area", "std_area"))
        columns[2].metric("Median area", median, help=f"{stats['median_area']:.0f} px")
        columns[3].metric("Mean area", mean, help=f"± {sd} (SD)")
    else:  # no nuclei, no areas (not "0 px")
        columns[2].metric("Median area", "–")
        columns[3].metric("Mean area", "–")
    if used.diameter is not None:
        st.session_state[f"estimate_{analysis.item.key}"] = round(used.diameter, 1)
        resized = (f" The image was resized ×{used.factor:.2f} so its nuclei match the {used.canonical_diameter:g} "
                   "px the network was trained at; results are at the original size."
                   if isinstance(used, Prediction) and abs(used.factor - 1) > 0.005 else "")
        # In µm where the pixel size is known, as the areas beside it and the CLI's log line.
        in_px = f"{used.diameter:.1f} px"
        shown = f"{used.diameter * analysis.pixel_size.um:.1f} µm" if analysis.pixel_size else in_px
        if used.diameter_source == "model":  # not a size measured on the image (a trial took it for one)
            shown += " (model's)"
        columns[4].metric("Diameter used", shown, help=(f"{in_px}. " if analysis.pixel_size else "")
                          + DIAMETER_SOURCES[used.diameter_source] + resized)
    else:
        columns[4].metric("Diameter used", "image scale")
    columns[5].metric("Channel", used_channel_name(analysis),
                      help="The channel the network saw, numbered from 0 ('all (RGB)': the image's colours as "
                           "they are; 'all (grey)': a grey image's one channel; summary.csv says 'all' for both).")


DIAMETER_SOURCES = {
    "given": "Set by hand.",
    "estimated": "Estimated from the image.",
    "measured": "Estimated, then corrected to the median size of the nuclei found.",
    "model": "The model's own: the image has hardly any contrast above its noise, so no size was estimated from "
             "it; the nuclei found there, if any, fit it.",
    "none": "",
}


def confidence_ui(analysis: Analysis | LargeAnalysis, model: NucleiModel) -> None:
    """Which kind of image this looks like, and how well the model did on that kind (not for
    an empty field of noise, whose note says so)."""
    if not shows_kind(analysis):
        return
    mean_ap, images, weak = kind_confidence(model.scores_for_new_images, analysis.kind)
    name = KIND_NAMES[analysis.kind]
    caveat = model.scores_caveat   # the wording info and segment print beside the model's name
    if model.scored_on_training_image:
        st.caption(f"Looks like {name}. The model was {caveat}.")
    elif mean_ap is None:
        st.caption(f"Looks like {name}. The model has no validation score for this kind: check the result by eye.")
    elif weak:
        st.warning(f"Looks like **{name}**: the model's validation mean AP on this kind is only {mean_ap:.2f} "
                   f"({plural(images, 'validation image', 'validation images')}" + (f"; {caveat}" if caveat else "")
                   + "). Expect missed or merged nuclei, "
                   "and check the result by eye.",
                   icon="⚠️")
    else:
        st.caption(f"Looks like {name}: validation mean AP on this kind {mean_ap:.2f} "
                   f"({plural(images, 'image', 'images')}" + (f"; {caveat}" if caveat else "") + ").")


def result_ui(analysis: Analysis, settings: Settings, model: NucleiModel) -> ImageScores | None:
    """One image's results; the scores against its ground truth where one is given."""
    item, image, labels = analysis.item, analysis.image, analysis.labels
    headline_ui(analysis)
    confidence_ui(analysis, model)
    # Drawn on the view the page shows (at most MAX_DISPLAY_SIDE px a side), not the full
    # image: cheap on every rerun, with outlines wide enough to see at page scale.
    view = page_view(labels)
    shown_image, shown_labels = view.strided(image), view.strided(labels)
    overlay = draw_overlay(shown_image, shown_labels, style=settings.style, opacity=settings.opacity,
                           display_side=PAGE_COLUMN_PX, stretch=settings.stretch)
    stretched = " (contrast-stretched)" if settings.stretch else ""
    left, right = st.columns(2)
    captions = (f"Original{stretched}{view.note}", f"{plural(int(labels.max()), 'nucleus', 'nuclei')}{view.note}")
    narrow = view.width != "stretch"  # a tall strip's window: a caption that wide wraps word by word (a user test)
    left.image(to_display(shown_image, settings.stretch)[view.window], caption=None if narrow else captions[0],
               width=view.width, clamp=True)
    right.image(overlay[view.window], caption=None if narrow else captions[1], width=view.width, clamp=True)
    if narrow:
        st.caption(f"Left: original{stretched}; right: {plural(int(labels.max()), 'nucleus', 'nuclei')}{view.note}.")
    # Keyed and tracked: uploading a ground truth reruns the page, and an untracked tab set
    # jumped back to its first tab, away from the scores it had just computed.
    interactive, probability, measurements, truth = st.tabs(
        ["Interactive view", "Probability map", "Measurements", "Compare to ground truth"],
        key=f"tabs_{analysis.item.key}", on_change="rerun")
    with interactive:
        pannable_chart(overlay, analysis, view, key=f"figure_{item.key}")
    with probability:
        st.image(probability_picture(view.still(analysis.probabilities)), width=view.width, clamp=True)
        st.caption(f"Nucleus probability (bright = nucleus){view.note}")
    with measurements:
        measurements_ui(analysis)
    with truth:
        scores = ground_truth_ui(analysis, settings, view)
    downloads_ui(item, file_builders(analysis, settings))
    return scores


def measurements_ui(analysis: Analysis) -> None:
    if analysis.table.empty:
        # A channel chosen by hand comes first: the wrong one finds nothing whatever the threshold.
        hand_picked = "the automatic channel, " if analysis.choices.channel != AUTO else ""
        if analysis.prediction.quiet:  # lowering the threshold on noise only finds the noise (a trial)
            st.info("No nuclei found: the field has hardly any contrast above its noise (an empty field?).")
        else:
            st.info(f"No nuclei found with these settings: try {hand_picked}a lower threshold or minimum size.")
        return
    # The µm columns stay in the downloads (every file has the same columns), empty where unknown.
    shown = analysis.table if analysis.pixel_size else analysis.table.drop(columns=UM_COLUMNS)
    st.dataframe(shown, width="stretch", hide_index=True, height=280)
    st.plotly_chart(area_histogram(analysis.table), width="stretch", key=f"hist_{analysis.item.key}")


def ground_truth_ui(analysis: Analysis, settings: Settings, view: PageView) -> ImageScores | None:
    """The comparison with a ground truth where one is given; its scores (for the ZIP), else None."""
    item = analysis.item
    upload = st.file_uploader("Ground-truth mask or label image (same size)", key=f"truth_{item.key}",
                              type=[s.lstrip(".") for s in IMAGE_SUFFIXES],
                              help="A binary mask (touching nuclei count as one) or an instance label image.")
    data = upload.getvalue() if upload else item.truth
    if data is None:
        st.caption("Upload a ground truth to see IoU, Dice, DSB mean AP and AP@0.5. Samples come with theirs.")
        return None
    try:
        ground_truth = read_ground_truth(data, name=upload.name if upload else f"{item.name} ground truth")
    except ImageReadError as error:
        st.error(str(error))
        return None
    truth = ground_truth.labels
    if truth.shape != analysis.labels.shape:
        st.error(f"The ground truth is {truth.shape[1]}×{truth.shape[0]} but the image is "
                 f"{analysis.labels.shape[1]}×{analysis.labels.shape[0]}: they must match.")
        return None
    scores = image_scores(truth, analysis.labels)
    columns = st.columns(5)
    for column, (label, value) in zip(columns, (("DSB mean AP", scores.mean_ap), ("AP@0.5", scores.ap50),
                                                ("IoU", scores.iou), ("Dice", scores.dice),
                                                ("True / found", f"{scores.n_true} / {scores.n_predicted}"))):
        column.metric(label, value if isinstance(value, str) else f"{value:.3f}")
    warning = truth_warning(ground_truth, analysis.labels)
    if warning:
        st.warning(warning)
    match, false_positive, missed = palette_for(analysis.image).names
    key = f"{match.capitalize()}: matched (IoU > 0.5) · {false_positive}: false positive · {missed}: missed nucleus"
    if not view.note:
        st.image(comparison_overlay(view.still(analysis.image), view.still(truth), view.still(analysis.labels),
                                    display_side=PAGE_COLUMN_PX * 2, stretch=settings.stretch),
                 width="stretch", clamp=True, caption=key)
        return scores
    # A strip: pannable, as the interactive view, so every part of it can be checked (a user
    # test: a still window showed 8 % of a strip's matches and misses).
    picture = comparison_overlay(view.strided(analysis.image), view.strided(truth), view.strided(analysis.labels),
                                 display_side=PAGE_COLUMN_PX * 2, stretch=settings.stretch)
    pannable_chart(picture, analysis, view, key=f"comparison_{analysis.item.key}")
    st.caption(f"{key}. Drag to pan along the strip.")
    return scores


MIME_TYPES = {".png": "image/png", ".csv": "text/csv", ".tif": "image/tiff", ".zip": "application/zip",
              ".geojson": "application/geo+json"}


def offer(label: str, file_name: str, build: Callable[[], bytes], key: str, **kwargs) -> None:
    """A download built on click; registered so the page's files can be checked in tests."""
    st.session_state.setdefault("_downloads", {})[file_name] = build
    st.download_button(label, build, file_name=file_name, key=key, on_click="ignore",
                       mime=MIME_TYPES.get(Path(file_name).suffix, "application/octet-stream"), **kwargs)


def downloads_ui(item: InputImage, builders: dict[str, Callable[[], bytes]],
                 labels: dict[str, str] | None = None) -> None:
    """``labels``: a button's label by file suffix, where it is not ``FILE_SUFFIXES``'s."""
    # What each file is for, in the reader's words (a user test: "--formats all" meant nothing).
    opens_in = ("the label TIFF opens in Fiji, napari and CellProfiler, the ROIs in Fiji's ROI Manager, the GeoJSON "
                "in QuPath" if f"{item.name}_rois.zip" in builders else
                "the label TIFF (every pixel) opens in Fiji, napari and CellProfiler")
    st.caption(f"Downloads: {opens_in}; the files are those of the command-line batch tool, so results of both "
               "combine. Intensities in the measurements are of the nuclear channel, scaled to 0-1 over the file's "
               "full range (8-bit: /255, 16-bit: /65535).")
    columns = st.columns(4)
    for index, (file_name, build) in enumerate(builders.items()):
        suffix = file_name[len(item.name):]
        with columns[index % 4]:
            offer((labels or {}).get(suffix, FILE_SUFFIXES[suffix]), file_name, build, key=f"dl_{item.key}{suffix}",
                  width="stretch")


def batch_ui(outcomes: list[Analysis | LargeAnalysis | Failure], builders: dict[str, Callable[[], bytes]],
             model: NucleiModel, settings: Settings) -> None:
    """The ZIP of everything, with the run's summary.csv (one image's too: a user test found no
    record of its settings and diameter); for several images, their table above it."""
    analyses = [outcome for outcome in outcomes if not isinstance(outcome, Failure)]
    if len(outcomes) > 1:
        batch_table_ui(outcomes, analyses)

    def build_zip() -> bytes:
        files = {name: build() for name, build in builders.items()}
        files["measurements.csv"] = combined_measurements({a.item.name: a.table for a in analyses})
        identity = model.identity()
        rows = [summary_row(o.item.label, o.item.name, status=o.reason) if isinstance(o, Failure)
                else {**with_settings(record_row(o, model.scores_for_new_images),
                                      settings_text(image_request(settings, o), identity)),
                      "formats": formats_among(o.item.name, files)}
                for o in outcomes]
        files["summary.csv"] = csv_bytes(pd.DataFrame(rows, columns=SUMMARY_COLUMNS))
        truth_scores = truth_scores_csv(analyses)
        if truth_scores:
            files["ground_truth_scores.csv"] = truth_scores
        return zip_bytes(files)
    offer("Download everything (ZIP)", "nuclei_results.zip", build_zip, key="dl_zip", type="primary",
          help="Every file below, with measurements.csv and summary.csv (the run's record: diameter used and how, "
               "channel, kind, settings, model), as the command line writes them; and ground_truth_scores.csv for "
               "the images compared with a ground truth.")


def batch_table_ui(outcomes: list[Analysis | LargeAnalysis | Failure],
                   analyses: list[Analysis | LargeAnalysis]) -> None:
    failures = [outcome.item.label for outcome in outcomes if isinstance(outcome, Failure)]
    st.subheader(plural(len(analyses), "image", "images") + " segmented")
    if failures:
        st.caption(f"Not segmented: {', '.join(failures)} (each card below says why, as the ZIP's summary.csv does).")
    # An image without nuclei has no sizes: "–", as its card shows them, not the word None (an
    # app trial; numbers stay numbers, the table sorts by them).
    st.dataframe(pd.DataFrame([page_row(a) for a in analyses]), hide_index=True, width="stretch", placeholder="–",
                 column_config={"Coverage (%)": st.column_config.NumberColumn(format="%.1f"),
                                "Mean area (px)": st.column_config.NumberColumn(format="%.0f"),
                                "Median area (px)": st.column_config.NumberColumn(format="%.0f"),
                                "Area SD (px)": st.column_config.NumberColumn(format="%.0f"),
                                "Diameter used (px)": st.column_config.NumberColumn(format="%.1f")})


def card_ui(model: NucleiModel, item: InputImage, settings: Settings, budget: PageBudget,
            position: str) -> Analysis | LargeAnalysis | Failure:
    """One image's card. Whatever goes wrong with this image stays on its card: the other
    images still show."""
    try:
        analysis = analyse(model, item, settings, budget, position)
        if isinstance(analysis, LargeAnalysis):
            large_result_ui(analysis, model)
        elif isinstance(analysis, Analysis):
            # Set on every run, not kept: the ZIP lists the scores of the truths on the page now.
            analysis = replace(analysis, truth_scores=result_ui(analysis, settings, model))
        return analysis
    except Exception as error:  # noqa: BLE001 - one image's failure must not take the page down
        reason = f"unexpected {type(error).__name__}: {error}. This is a bug: please report it with the file if you can."
        return failed(item, reason, f"**{item.label}** could not be processed: {reason}")


def too_many_ui(items: list[InputImage]) -> list[InputImage]:
    if len(items) <= LIMITS.max_images:
        return items
    skipped = ", ".join(item.label for item in items[LIMITS.max_images:])
    st.warning(f"{len(items)} images: only the first {LIMITS.max_images} are segmented here, to keep the server "
               f"responsive for everyone. Not processed: {skipped}. For batches, use the command line "
               "(`python -m nuclei_app segment FOLDER --out DIR`).", icon="⚠️")
    return items[:LIMITS.max_images]


def main() -> None:
    st.set_page_config(page_title="Nuclei", page_icon="🔬", layout="wide")
    memory_janitor()
    st.title("Nuclei")
    st.caption("Find and measure every cell nucleus in fluorescence, brightfield and H&E images "
               "(U-Net trained on the 2018 Data Science Bowl data).")
    try:
        model = load_model(configured_source())
    except ModelLoadError as error:
        st.error(f"No model could be loaded: {error}")
        st.stop()
    if model.notice:
        st.warning(model.notice, icon="⚠️")
    model_panel(model)
    settings = settings_ui(model)
    items = inputs_ui()
    st.session_state["_downloads"] = {}
    drop_unshown(items)
    if not items:
        st.info("Upload images or tick a sample to start.")
        return
    items = too_many_ui(items)
    batch_area = st.container()  # filled after the loop, shown above the per-image results
    outcomes, builders, budget = [], {}, PageBudget()
    for number, item in enumerate(items, start=1):
        with st.container(border=True):
            position = f"Image {number} of {len(items)} · " if len(items) > 1 else ""
            outcome = card_ui(model, item, settings, budget, position)
            outcomes.append(outcome)
            if not isinstance(outcome, Failure):
                builders.update(large_file_builders(outcome) if isinstance(outcome, LargeAnalysis)
                                else file_builders(outcome, settings))
    if builders:  # one image segmented at least: the ZIP, and for several images the batch's table
        with batch_area:
            batch_ui(outcomes, builders, model, settings)


if __name__ == "__main__":
    main()
