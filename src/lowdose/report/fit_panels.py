"""The image panels of ``lowdose fit``'s report: one full-width figure per method.

Each figure shows one test image as a method leaves it, 620 px wide (the report's page is about
1030 px wide, so the browser does not shrink it), beside what the method removed (input − output,
390 px, a symmetric window of ±3 noise sd: grain only if it removed noise only; edges of ribs
or organs if it removed anatomy too). Both carry an inset of the same :data:`ZOOM_PX` square,
magnified x3 of the panel (less where the inset would cover more than 45 % of it), chosen where
the input holds the most structure in the body, so a user sees whether edges and fine texture
survive. For the noisy input the right panel is that square magnified instead.

CT in HU is shown in HU with the soft-tissue window; other data on the dataset scale between the
1st and 99th percentile of the preferred output, the unit named in every title.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowdose.core.metrics import HU_SOFT_TISSUE_WINDOW
from lowdose.data.scaling import scaled_to_hu
from lowdose.physics.single_image_noise import body_mask_hu
from lowdose.report.figures import ZOOM_COLOUR, png_bytes, zoom_inset

ZOOM_PX = 64
"""Side of the zoomed square, pixels (a quarter of the shorter side on smaller images)."""
_DPI = 110
_FIGURE_PX, _MAIN_PX, _SIDE_PX, _TITLE_PX = 1030, 620, 390, 34


@dataclass(frozen=True)
class PanelView:
    """How the panels of one test image are drawn (the same for every method).

    Attributes
    ----------
    noisy : ndarray (H, W) float
        The input in the display unit.
    window : (float, float)
        Display window of the images, in ``unit``.
    residual_limit : float
        The residual is shown in ``-residual_limit .. residual_limit`` (``unit``).
    unit : str
        ``"HU"`` or ``"dataset scale"``.
    box : (int, int, int)
        Zoomed square: top row, left column, side (pixels).
    """

    noisy: np.ndarray
    window: tuple[float, float]
    residual_limit: float
    unit: str
    box: tuple[int, int, int]


def panel_view(
    images: dict[str, np.ndarray],
    preferred: str,
    *,
    sigma: float,
    hu_divisor: float | None,
) -> PanelView:
    """The display settings for the first test image of ``images`` (name -> (I, H, W)).

    Parameters
    ----------
    images : dict of str -> ndarray (I, H, W)
        Every method's output and ``noisy``, on the dataset scale.
    preferred : str
        The method ``fit`` would use (its output sets the window of non-CT data).
    sigma : float
        Noise sd of the first image on the dataset scale (the residual window is ±3 sd).
    hu_divisor : float or None
        For CT in HU, ``HU = scaled * hu_divisor - 1024``.
    """
    noisy = to_display(images["noisy"][0], hu_divisor)
    if hu_divisor is not None:
        window, unit, to_unit = HU_SOFT_TISSUE_WINDOW, "HU", float(hu_divisor)
        region = body_mask_hu(noisy)
    else:
        reference = images.get(preferred, images["noisy"])[0]
        window = tuple(float(v) for v in np.percentile(reference, [1, 99]))
        unit, to_unit, region = "dataset scale", 1.0, None
    limit = 3.0 * sigma * to_unit
    if not np.isfinite(limit) or limit <= 0:  # no usable estimate: the input's own spread
        limit = float(np.percentile(np.abs(noisy - np.median(noisy)), 99)) or 1.0
    box = structured_box(np.clip(noisy, *window), region=region)
    return PanelView(noisy, window, limit, unit, box)


def structured_box(image: np.ndarray, *, region: np.ndarray | None = None) -> tuple[int, int, int]:
    """The :data:`ZOOM_PX` square of ``image`` (H, W) with the most structure, in ``region``.

    Structure is the sd of the image after a 2 px Gaussian (which averages the noise away);
    squares at least 90 % inside ``region`` (for CT the body) are preferred when any exists.

    Returns
    -------
    (row, col, size)
        Top-left corner and side, pixels.
    """
    from scipy import ndimage  # heavy: keeps `lowdose --help` fast

    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), 2.0)
    h, w = smooth.shape
    size = min(ZOOM_PX, max(4, min(h, w) // 4))
    stride = max(1, size // 4)
    best, best_key = (0, 0), (-1.0, -1.0)
    for r in range(0, h - size + 1, stride):
        for c in range(0, w - size + 1, stride):
            inside = 1.0 if region is None else float(np.mean(region[r : r + size, c : c + size]))
            key = (float(inside >= 0.9), float(np.std(smooth[r : r + size, c : c + size])))
            if key > best_key:
                best, best_key = (r, c), key
    return best[0], best[1], size


def method_figure(
    view: PanelView, output: np.ndarray | None, title: str, *, note: str = ""
) -> bytes:
    """One method's row: its output (H, W, display unit) and the residual, each with an inset.

    ``output`` None draws the noisy input with its zoomed square beside it. ``note`` (lines of
    the method's scores) is written under the right panel.

    Returns
    -------
    bytes
        PNG, 1030 px wide; the output panel 620 px wide.
    """
    from matplotlib.figure import Figure

    h, w = view.noisy.shape
    main_h, side_h = _MAIN_PX * h / w, _SIDE_PX * h / w
    fig_h = main_h + _TITLE_PX
    fig = Figure(figsize=(_FIGURE_PX / _DPI, fig_h / _DPI), dpi=_DPI)
    ax_main = fig.add_axes((0.0, 0.0, _MAIN_PX / _FIGURE_PX, main_h / fig_h))
    left = (_FIGURE_PX - _SIDE_PX) / _FIGURE_PX
    ax_side = fig.add_axes((left, (main_h - side_h) / fig_h, _SIDE_PX / _FIGURE_PX, side_h / fig_h))
    lo, hi = view.window
    shown = view.noisy if output is None else output
    image_style = {"cmap": "gray", "vmin": lo, "vmax": hi, "interpolation": "nearest"}
    _show(ax_main, shown, title, image_style)  # the window is stated under the side panel
    r0, c0, size = view.box
    if output is None:
        crop = shown[r0 : r0 + size, c0 : c0 + size]
        _show(ax_side, crop, f"orange square magnified ({size}x{size} px)", image_style)
        for spine in ax_side.spines.values():
            spine.set_visible(True)
            spine.set_edgecolor(ZOOM_COLOUR)
            spine.set_linewidth(2.0)
    else:
        limit = view.residual_limit
        residual_style = {"cmap": "gray", "vmin": -limit, "vmax": limit, "interpolation": "nearest"}
        residual = view.noisy - output
        _show(
            ax_side, residual, f"removed: input − output, ±{limit:.3g} {view.unit}", residual_style
        )
        _inset(ax_side, residual, view.box, residual_style)
        _inset(ax_main, shown, view.box, image_style)
    note = "\n".join(filter(None, [f"window {lo:.4g}..{hi:.4g} {view.unit}", note]))
    fig.text(
        left,
        (main_h - side_h - 14) / fig_h,
        note,
        fontsize=9.5,
        va="top",
        ha="left",
        linespacing=1.5,
    )
    return png_bytes(fig)


def to_display(array: np.ndarray, hu_divisor: float | None) -> np.ndarray:
    """One (H, W) image on the dataset scale in the display unit (HU for CT in HU), float64."""
    if hu_divisor is None:
        return np.asarray(array, np.float64)
    return scaled_to_hu(array, hu_divisor).astype(np.float64)


def _show(ax, image: np.ndarray, title: str, style: dict) -> None:
    ax.imshow(image, aspect="equal", **style)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _inset(ax, image: np.ndarray, box: tuple[int, int, int], style: dict) -> None:
    """The square ``box`` magnified in the corner of ``ax`` farthest from it."""
    r0, c0, size = box
    h, w = image.shape
    fraction = min(0.45, 3.0 * size / w)  # x3 of the panel, at most 45 % of its width
    x0 = 0.01 if c0 + size / 2 > w / 2 else 0.99 - fraction
    y0 = 0.99 - fraction if r0 + size / 2 > h / 2 else 0.01
    zoom_inset(ax, image, box, style, bounds=(x0, y0, fraction, fraction), spine_width=1.8)


def input_noise_sd(scores: list[dict], choice: dict) -> float:
    """The input's noise sd on the dataset scale for the residual panels: its flat-region sd
    (measured in the body for CT), else the filters' sigma (which reads correlated noise low)."""
    for row in scores:
        if row["method"] == "noisy" and np.isfinite(float(row["flat_sigma"])):
            return float(row["flat_sigma"])
    sigma = choice.get("sigma") or [float("nan")]
    return float(sigma[0])
