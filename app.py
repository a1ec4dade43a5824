"""Nuclei: drop a microscopy image, see every nucleus. Streamlit page layout and widgets only;
all image work happens in ``nuclei_app``."""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from nuclei_app.channels import ALL_CHANNELS, AUTO, as_channels, display_rgb
from nuclei_app.config import IMAGE_SUFFIXES, SAMPLES_DIR, PostprocessSettings
from nuclei_app.figures import area_histogram, overlay_figure
from nuclei_app.imageio import ImageReadError, read_channels, read_labels
from nuclei_app.kinds import KIND_NAMES, image_kind, kind_confidence
from nuclei_app.measure import measure_nuclei, summary
from nuclei_app.metrics import image_scores
from nuclei_app.model import ModelLoadError, NucleiModel
from nuclei_app.overlay import STYLES, comparison_overlay, display_stride, draw_overlay, probability_picture, to_display
from nuclei_app.pipeline import Prediction, labels_for, predict
from nuclei_app.results import combined_measurements, image_result_files, zip_bytes
from nuclei_app.sources import describe, resolve_model

SESSION_CACHE_ENTRIES = 6  # per browser session: bounds memory with several users


@dataclass(frozen=True)
class InputImage:
    name: str              # file name without extension: the stem of every output file
    data: bytes
    digest: str            # identifies the content: results are reused while it is unchanged
    truth: bytes | None = None


@dataclass(frozen=True)
class Settings:
    postprocess: PostprocessSettings
    tta: bool
    style: str
    opacity: float


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
def segmentation_slot() -> threading.Lock:
    """One segmentation at a time per process: TensorFlow already uses every core for one,
    and several at once would only add up their working memory (each 2048x2048 image
    needs ~0.5 GB while it is being segmented)."""
    return threading.Lock()


@st.cache_resource(show_spinner="Loading the model…")
def load_model(source: str | None) -> NucleiModel:
    return resolve_model(source)  # loaded once per process, shared by every session


def model_panel(model: NucleiModel) -> None:
    with st.sidebar.expander("Model", expanded=False):
        st.markdown(f"**In use:** `{describe(model)}`")
        metrics = model.validation_metrics.get("validation", {})
        if metrics:
            rows = {kind: {"images": m["images"], "mean AP": m["mean_ap"], "AP@0.5": m["ap50"], "Dice": m["dice"]}
                    for kind, m in metrics.items()}
            st.caption("Validation metrics (DSB2018 20% split)")
            st.dataframe(pd.DataFrame(rows).T, width="stretch",
                         column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("mean AP", "AP@0.5", "Dice")})


# -- settings ---------------------------------------------------------------------------
def default_settings(model: NucleiModel) -> dict:
    tuned = model.postprocess_settings
    return {"threshold": float(tuned.threshold), "min_size": int(tuned.min_size),
            "tta": bool(model.inference_settings.tta), "style": "outlines", "opacity": 0.6}


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
    sidebar.number_input("Minimum nucleus size (px)", 0, 5000, step=1, key="min_size",
                         help=f"Smaller objects are dropped as noise. Tuned value: {defaults['min_size']}")
    sidebar.toggle("Flip test-time augmentation", key="tta", help="Averages 4 flipped predictions: smoother edges, 4x slower.")
    sidebar.radio("Overlay", STYLES, key="style", horizontal=True,
                  format_func={"outlines": "Outlines", "filled": "Filled", "instances": "Colour per nucleus"}.get)
    sidebar.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="opacity")
    sidebar.button("Reset to the model's defaults", on_click=reset_settings, args=(defaults,))
    postprocess = PostprocessSettings(threshold=st.session_state.threshold, min_size=int(st.session_state.min_size),
                                      marker_threshold=model.postprocess_settings.marker_threshold)
    return Settings(postprocess, st.session_state.tta, st.session_state.style, st.session_state.opacity)


# -- inputs -----------------------------------------------------------------------------
def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def sample_paths() -> list[Path]:
    return sorted(p for p in (SAMPLES_DIR / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def inputs_ui() -> list[InputImage]:
    limit = st.get_option("server.maxUploadSize")
    upload_tab, samples_tab = st.tabs(["Upload images", "Sample images"])
    with upload_tab:
        uploads = st.file_uploader(
            "Drop microscopy images here", accept_multiple_files=True,
            type=[s.lstrip(".") for s in IMAGE_SUFFIXES],
            help=f"PNG, JPEG, TIFF (8/16-bit, multi-channel stacks), BMP; greyscale or colour; up to {limit} MB per file.")
        st.caption(f"PNG, JPEG, TIFF (8/16-bit, multi-channel), BMP · up to {limit} MB per file · images stay on this server "
                   "only while the page is open.")
    with samples_tab:
        chosen = samples_gallery()
    items = [InputImage(Path(u.name).stem, u.getvalue(), digest(u.getvalue())) for u in uploads or []]
    for path in chosen:
        truth_path = SAMPLES_DIR / "ground_truth" / path.name
        data = path.read_bytes()
        items.append(InputImage(f"{path.stem}", data, digest(data), truth_path.read_bytes() if truth_path.exists() else None))
    return items


def samples_gallery() -> list[Path]:
    st.caption("Validation images from DSB2018 (CC0), with ground truth: tick one or more.")
    paths = sample_paths()
    columns = st.columns(len(paths))
    chosen = []
    for column, path in zip(columns, paths):
        with column:
            st.image(str(path), width="stretch")
            if st.checkbox(path.stem.replace("_", " "), key=f"sample_{path.stem}"):
                chosen.append(path)
    return chosen


# -- per-session result cache --------------------------------------------------------------
def session_cached(key: tuple, compute):
    """LRU cache in this browser session: moving a display slider never recomputes."""
    cache: OrderedDict = st.session_state.setdefault("_results", OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > SESSION_CACHE_ENTRIES * 3:
        cache.popitem(last=False)
    return value


@dataclass(frozen=True)
class ImageChoices:
    """Per-image choices: ``diameter`` None = estimate it, ``channel`` 'auto', 'all' or an index."""
    diameter: float | None = None
    channel: int | str = AUTO

    @property
    def key(self) -> tuple:
        # A plain tuple: Streamlit re-runs this file, so this class is a new object on every
        # rerun and its instances never compare equal to the previous run's.
        return (self.diameter, self.channel)


def prediction_for(model: NucleiModel, item: InputImage, image: np.ndarray, settings: Settings,
                   choices: ImageChoices, position: str) -> Prediction:
    def compute():
        bar = st.progress(0.0, text=f"{position}Waiting for another segmentation to finish…")
        with segmentation_slot():
            result = predict(model, image, tta=settings.tta, diameter=choices.diameter, channel=choices.channel,
                             progress=lambda done, total: bar.progress(
                                 done / total, text=f"{position}Segmenting {item.name}: tile {done} of {total}"))
        bar.empty()
        return result
    return session_cached(("prediction", model.source, item.digest, settings.tta, choices.key), compute)


def labels_cached(item: InputImage, prediction: Prediction, settings: Settings, choices: ImageChoices,
                  model: NucleiModel) -> np.ndarray:
    def compute():
        with segmentation_slot():
            return labels_for(model, prediction, settings.postprocess)
    return session_cached(("labels", model.source, item.digest, settings.tta, choices.key, settings.postprocess),
                          compute)


# -- results ----------------------------------------------------------------------------
@dataclass
class Analysis:
    item: InputImage
    image: np.ndarray          # what the user sees: RGB, or the nuclear channel of a stack
    prediction: Prediction
    labels: np.ndarray
    table: pd.DataFrame
    kind: str

    @property
    def probabilities(self) -> np.ndarray:
        return self.prediction.probabilities


def analyse(model: NucleiModel, item: InputImage, settings: Settings, position: str = "") -> Analysis | None:
    try:
        channels = session_cached(("image", item.digest), lambda: read_channels(item.data, name=item.name))
    except ImageReadError as error:
        st.error(f"**{item.name}** was skipped: {error}")
        return None
    height, width = channels.shape[:2]
    st.subheader(f"{item.name}  ·  {width}×{height}")
    choices = image_choices_ui(item, channels, model)
    try:
        prediction = prediction_for(model, item, channels, settings, choices, position)
    except ValueError as error:  # e.g. a channel the image does not have
        st.error(f"**{item.name}**: {error}")
        return None
    labels = labels_cached(item, prediction, settings, choices, model)
    used = prediction.channel
    image = display_rgb(channels, used)
    intensity = channels[..., used] if isinstance(used, int) else channels
    table = session_cached(("table", model.source, item.digest, settings.tta, choices.key, settings.postprocess),
                           lambda: measure_nuclei(labels, intensity))
    return Analysis(item, image, prediction, labels, table, image_kind(image))


def image_choices_ui(item: InputImage, channels: np.ndarray, model: NucleiModel) -> ImageChoices:
    """Per-image scale and channel controls; both default to automatic."""
    count = as_channels(channels).shape[-1]
    with st.expander("Nucleus diameter and channel", expanded=False):
        diameter = None
        if model.diameter is not None:
            by_hand = st.toggle("Set the nucleus diameter by hand", key=f"diameter_manual_{item.digest}",
                                help="By default the diameter is estimated for each image. Set it when you know "
                                     "it, or when the nuclei found look fragmented (diameter too small) or "
                                     "merged (too large).")
            if by_hand:
                diameter = float(st.number_input("Nucleus diameter (px)", 3.0, 500.0, step=1.0,
                                                 key=f"diameter_{item.digest}",
                                                 value=st.session_state.get(f"estimate_{item.digest}", model.diameter)))
        else:
            st.caption("This model records no training diameter: images are segmented at their own scale.")
        channel = AUTO
        if count > 1:
            options = [AUTO, ALL_CHANNELS] + list(range(count))
            names = {AUTO: "Automatic", ALL_CHANNELS: "All colours (H&E, brightfield)"}
            channel = st.selectbox("Channel holding the nuclei", options, key=f"channel_{item.digest}",
                                   format_func=lambda c: names.get(c, f"Channel {c}"))
            previews = st.columns(min(count, 8))
            for index, column in enumerate(previews):
                column.image(to_display(screen_view(channels[..., index], 160)), caption=f"Channel {index}",
                             width="stretch", clamp=True)
    return ImageChoices(diameter, channel)


def screen_view(array: np.ndarray, max_side: int = 1200) -> np.ndarray:
    """A strided view for showing on the page: no browser shows more pixels in a column,
    and a view costs no memory (downloads keep the full resolution)."""
    step = display_stride(array.shape, max_side)
    return array[::step, ::step]


def headline_ui(analysis: Analysis) -> None:
    stats = summary(analysis.labels, analysis.table)
    prediction = analysis.prediction
    columns = st.columns(6)
    columns[0].metric("Nuclei", stats["count"])
    columns[1].metric("Coverage", f"{100 * stats['coverage']:.1f} %")
    columns[2].metric("Median area", f"{stats['median_area']:.0f} px")
    columns[3].metric("Mean area", f"{stats['mean_area']:.0f} px", help=f"± {stats['std_area']:.0f} px (SD)")
    if prediction.diameter is not None:
        st.session_state[f"estimate_{analysis.item.digest}"] = round(prediction.diameter, 1)
        columns[4].metric("Diameter used", f"{prediction.diameter:.1f} px",
                          help=f"{DIAMETER_SOURCES[prediction.diameter_source]} The image was resized "
                               f"×{prediction.factor:.2f} so its nuclei match the {prediction.canonical_diameter:g} px "
                               "the network was trained at; results are at the original size.")
    else:
        columns[4].metric("Diameter used", "image scale")
    columns[5].metric("Channel", "all" if prediction.channel == ALL_CHANNELS else f"{prediction.channel}",
                      help="The channel the network saw: 'all' = the image's colours as they are.")


DIAMETER_SOURCES = {
    "given": "Set by hand.",
    "estimated": "Estimated from the image.",
    "measured": "Estimated, then corrected to the median size of the nuclei found.",
    "none": "",
}


def confidence_ui(analysis: Analysis, model: NucleiModel) -> None:
    """Which kind of image this looks like, and how well the model did on that kind."""
    mean_ap, images, weak = kind_confidence(model.validation_metrics, analysis.kind)
    name = KIND_NAMES[analysis.kind]
    if mean_ap is None:
        st.caption(f"Looks like {name}. The model has no validation score for this kind: check the result by eye.")
    elif weak:
        st.warning(f"Looks like **{name}**: the model's validation mean AP on this kind is only {mean_ap:.2f} "
                   f"({images} validation images). Expect missed or merged nuclei, and check the result by eye.",
                   icon="⚠️")
    else:
        st.caption(f"Looks like {name}: validation mean AP on this kind {mean_ap:.2f} ({images} images).")


def result_ui(analysis: Analysis, settings: Settings, model: NucleiModel) -> dict[str, bytes]:
    item, image, labels = analysis.item, analysis.image, analysis.labels
    headline_ui(analysis)
    confidence_ui(analysis, model)
    overlay = draw_overlay(image, labels, style=settings.style, opacity=settings.opacity)
    left, right = st.columns(2)
    left.image(to_display(screen_view(image)), caption="Original", width="stretch", clamp=True)
    right.image(screen_view(overlay), caption=f"{labels.max()} nuclei", width="stretch", clamp=True)
    interactive, probability, measurements, truth = st.tabs(
        ["Interactive view", "Probability map", "Measurements", "Compare to ground truth"])
    with interactive:
        st.plotly_chart(overlay_figure(overlay, analysis.table), width="stretch",
                        config={"scrollZoom": True, "displaylogo": False}, key=f"figure_{item.digest}")
    with probability:
        st.image(probability_picture(screen_view(analysis.probabilities)), caption="Nucleus probability (bright = nucleus)",
                 width="stretch", clamp=True)
    with measurements:
        measurements_ui(analysis)
    with truth:
        ground_truth_ui(analysis)
    files = image_result_files(item.name, labels, overlay, analysis.table)
    downloads_ui(item, files)
    return files


def measurements_ui(analysis: Analysis) -> None:
    if analysis.table.empty:
        st.info("No nuclei found with these settings: try a lower threshold or minimum size.")
        return
    st.dataframe(analysis.table, width="stretch", hide_index=True, height=280)
    st.plotly_chart(area_histogram(analysis.table), width="stretch", key=f"hist_{analysis.item.digest}")


def ground_truth_ui(analysis: Analysis) -> None:
    item = analysis.item
    upload = st.file_uploader("Ground-truth mask or label image (same size)", key=f"truth_{item.digest}",
                              type=[s.lstrip(".") for s in IMAGE_SUFFIXES],
                              help="A binary mask (touching nuclei count as one) or an instance label image.")
    data = upload.getvalue() if upload else item.truth
    if data is None:
        st.caption("Upload a ground truth to see IoU, Dice, DSB mean AP and AP@0.5. Samples come with theirs.")
        return
    try:
        truth = read_labels(data, name=upload.name if upload else f"{item.name} ground truth")
    except ImageReadError as error:
        st.error(str(error))
        return
    if truth.shape != analysis.labels.shape:
        st.error(f"The ground truth is {truth.shape[1]}×{truth.shape[0]} but the image is "
                 f"{analysis.labels.shape[1]}×{analysis.labels.shape[0]}: they must match.")
        return
    scores = image_scores(truth, analysis.labels)
    columns = st.columns(5)
    for column, (label, value) in zip(columns, (("DSB mean AP", scores.mean_ap), ("AP@0.5", scores.ap50),
                                                ("IoU", scores.iou), ("Dice", scores.dice),
                                                ("True / found", f"{scores.n_true} / {scores.n_predicted}"))):
        column.metric(label, value if isinstance(value, str) else f"{value:.3f}")
    st.image(comparison_overlay(analysis.image, truth, analysis.labels), width="stretch", clamp=True,
             caption="Green: matched (IoU > 0.5) · red: false positive · blue: missed nucleus")


def downloads_ui(item: InputImage, files: dict[str, bytes]) -> None:
    columns = st.columns(4)
    labels = {"_labels.png": "Labels (16-bit PNG)", "_mask.png": "Mask PNG", "_overlay.png": "Overlay PNG",
              "_measurements.csv": "Measurements CSV"}
    for column, (filename, data) in zip(columns, files.items()):
        suffix = filename[len(item.name):]
        column.download_button(labels[suffix], data, file_name=filename, key=f"dl_{item.digest}{suffix}",
                               mime="text/csv" if suffix.endswith(".csv") else "image/png", on_click="ignore",
                               width="stretch")


def batch_ui(analyses: list[Analysis], files: dict[str, bytes]) -> None:
    st.subheader(f"{len(analyses)} images")
    rows = [{"image": a.item.name, **summary(a.labels, a.table), "diameter_px": a.prediction.diameter,
             "channel": str(a.prediction.channel)} for a in analyses]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"coverage": st.column_config.NumberColumn(format="%.3f"),
                                "mean_area": st.column_config.NumberColumn(format="%.1f"),
                                "median_area": st.column_config.NumberColumn(format="%.1f"),
                                "std_area": st.column_config.NumberColumn(format="%.1f")})
    bundle = dict(files)
    bundle["measurements.csv"] = combined_measurements({a.item.name: a.table for a in analyses})
    st.download_button("Download everything (ZIP)", zip_bytes(bundle), file_name="nuclei_results.zip",
                       mime="application/zip", on_click="ignore", type="primary", key="dl_zip")


def main() -> None:
    st.set_page_config(page_title="Nuclei", page_icon="🔬", layout="wide")
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
    if not items:
        st.info("Upload images or tick a sample to start.")
        return
    batch_area = st.container()  # filled after the loop, shown above the per-image results
    analyses, files = [], {}
    for number, item in enumerate(items, start=1):
        with st.container(border=True):
            position = f"Image {number} of {len(items)} · " if len(items) > 1 else ""
            analysis = analyse(model, item, settings, position)
            if analysis is not None:
                files.update(result_ui(analysis, settings, model))
                analyses.append(analysis)
    if len(analyses) > 1:
        with batch_area:
            batch_ui(analyses, files)


if __name__ == "__main__":
    main()
