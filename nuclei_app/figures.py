"""Interactive Plotly figures for the app: the zoomable overlay with per-nucleus hover,
and the area histogram."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .imageio import to_uint8
from .overlay import shown_extent, view_stride

MAX_DISPLAY_SIDE = 1600  # larger images are shown subsampled: the browser stays responsive


STRIP_HEIGHT = 320  # a wide strip's figure (opened on its start, overlay.shown_extent): no tall empty box


def overlay_figure(overlay: np.ndarray, table: pd.DataFrame, height: int = 620, step: int | None = None,
                   shape: tuple[int, ...] | None = None, start: int = 0) -> go.Figure:
    """The overlay as a zoomable image; hovering a nucleus centre shows id, area (in µm² where
    the table has them, as the histogram and the card), intensity.
    ``step``: the overlay is already subsampled by it (coordinates stay the image's own;
    ``shape``: the image's, where known); None: it is at full resolution and is subsampled
    here. A strip opens on the part ``shown_extent`` long from ``start`` (px along it).

    Hover comes from one marker per nucleus rather than a per-pixel layer, so the page
    stays light for images with thousands of nuclei.
    """
    if step is None:
        shape, step = overlay.shape, view_stride(overlay.shape, MAX_DISPLAY_SIDE)
        overlay = overlay[::step, ::step]
    shown = to_uint8(overlay)
    figure = go.Figure(go.Image(z=shown, dx=step, dy=step, hoverinfo="skip"))
    if len(table):
        area, unit = area_column(table)
        digits = ".1f" if area == "area_um2" else ".0f"
        figure.add_trace(go.Scatter(
            x=table["centroid_x"], y=table["centroid_y"], mode="markers",
            marker=dict(size=np.clip(table["diameter_px"] / step, 6, 30), color="rgba(255,255,255,0.01)",
                        line=dict(width=0)),
            customdata=np.stack([table["nucleus"], table[area], table["mean_intensity"]], axis=-1),
            hovertemplate=f"nucleus %{{customdata[0]:.0f}}<br>area %{{customdata[1]:{digits}}} {unit}"
                          "<br>mean intensity %{customdata[2]:.3f}<extra></extra>",
            name="nuclei"))
    image_height, image_width = (shape or (overlay.shape[0] * step, overlay.shape[1] * step))[:2]
    shown_height, shown_width = shown_extent((image_height, image_width))
    if shown_width < image_width:
        height = min(height, STRIP_HEIGHT)
    figure.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), showlegend=False, dragmode="pan")
    left = start if shown_width < image_width else 0
    top = start if shown_height < image_height else 0
    figure.update_xaxes(visible=False, range=[left, left + shown_width])
    figure.update_yaxes(visible=False, range=[top + shown_height, top], scaleanchor="x")
    return figure


def area_column(table: pd.DataFrame) -> tuple[str, str]:
    """(column, unit) of the areas shown: µm² where the table has them (a pixel size known)."""
    in_um = "area_um2" in table and table["area_um2"].notna().any()
    return ("area_um2", "µm²") if in_um else ("area_px", "px")


def area_histogram(table: pd.DataFrame) -> go.Figure:
    """Nucleus areas in µm² where the table has them (a pixel size known), else in px."""
    column, unit = area_column(table)
    figure = go.Figure(go.Histogram(x=table[column], nbinsx=40, marker_color="#4c78a8"))
    figure.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title=f"Nucleus area ({unit})",
                         xaxis_title=f"area ({unit})", yaxis_title="nuclei", bargap=0.05)
    return figure
