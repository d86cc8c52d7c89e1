"""The report's figures as PNG bytes: sweeps against clean, image panels, training curves.

Matplotlib is imported inside each function (lazy) and only its object-oriented ``Figure`` API is
used with the Agg canvas, so no global pyplot state or display is touched. Every function takes
plain arrays and returns the encoded PNG; the caller decides where it goes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

_DPI = 110
_MODEL_COLOURS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085")
_FILTER_COLOURS = ("#7f8c8d", "#b7950b", "#a04000", "#5d6d7e", "#6c3483")
ZOOM_COLOUR = "#ff9f1c"


@dataclass(frozen=True)
class SweepCurve:
    """One mean curve of the sweep against clean.

    Attributes
    ----------
    label
        Legend text, e.g. ``n2n-mse unet-w16 (trained at 29.91 dB)``.
    input_psnr_db, output_psnr_db
        (L,) float64 mean input and output PSNR per noise level, dB, sorted by input.
    is_model
        True for trained networks (drawn solid), False for filters (drawn dashed).
    zero_gain_db
        Input PSNRs (dB) where the gain crosses zero.
    """

    label: str
    input_psnr_db: np.ndarray
    output_psnr_db: np.ndarray
    is_model: bool
    zero_gain_db: tuple[float, ...] = ()


def new_figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, facecolor="white")
    return buffer.getvalue()


def style_axes(ax, *, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
    ax.grid(True, color="#e3e6ea", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def sweep_figure(
    curves: list[SweepCurve],
    *,
    model_crossings: list[tuple[float, float]] = (),
    paper_range_db: tuple[float, float] | None = None,
    trained_at_db: tuple[float, ...] = (),
) -> bytes:
    """Output PSNR and gain against input PSNR, one panel each (as the paper's Figs. 2 and 4).

    Parameters
    ----------
    curves
        Mean curves; models solid with markers, filters dashed.
    model_crossings
        (input_psnr_db, output_psnr_db) points where two model curves cross, marked with a diamond.
    paper_range_db
        The paper's sweep range (low, high) in dB, shaded lightly for reference.
    trained_at_db
        Training noise levels (dB input PSNR), drawn as dotted vertical lines.

    Returns
    -------
    bytes
        PNG image, about 1300 x 480 pixels.
    """
    fig = new_figure(12.0, 4.4)
    ax_out, ax_gain = fig.subplots(1, 2)
    all_x = np.concatenate([c.input_psnr_db for c in curves]) if curves else np.array([0.0, 1.0])
    lo, hi = float(np.nanmin(all_x)), float(np.nanmax(all_x))
    ax_out.plot(
        [lo, hi], [lo, hi], color="#9aa3ad", linewidth=1, linestyle=":", label="output = input"
    )
    ax_gain.axhline(0.0, color="#5b6776", linewidth=1)
    models, filters = iter(_MODEL_COLOURS * 4), iter(_FILTER_COLOURS * 4)
    for k, curve in enumerate(curves):
        _draw_sweep_curve(ax_out, ax_gain, curve, next(models if curve.is_model else filters), k)
    cross = {"marker": "D", "markersize": 8, "markerfacecolor": "none", "markeredgecolor": "k"}
    for x0, y0 in model_crossings:
        ax_out.plot([x0], [y0], linestyle="none", markeredgewidth=1.5, zorder=6, **cross)
        ax_gain.plot([x0], [y0 - x0], linestyle="none", markeredgewidth=1.5, zorder=6, **cross)
    for ax in (ax_out, ax_gain):
        if paper_range_db is not None:
            ax.axvspan(*paper_range_db, color="#f1c40f", alpha=0.08, label="paper's sweep range")
        for x_train in trained_at_db:
            ax.axvline(x_train, color="#34495e", linestyle=(0, (1, 3)), linewidth=1.2)
    style_axes(ax_out, xlabel="input PSNR [dB]", ylabel="output PSNR [dB]", title="(a) output PSNR")
    style_axes(
        ax_gain,
        xlabel="input PSNR [dB]",
        ylabel="gain = output − input [dB]",
        title="(b) PSNR gain (✕ zero gain, ◇ models cross)",
    )
    ax_out.legend(fontsize=8, frameon=False, loc="upper left")
    return png_bytes(fig)


def _draw_sweep_curve(ax_out, ax_gain, curve: SweepCurve, colour: str, k: int) -> None:
    style = (
        {"linewidth": 2.2, "marker": "o", "markersize": 4}
        if curve.is_model
        else {"linewidth": 1.3, "linestyle": "--", "marker": ".", "markersize": 4}
    )
    x, y = curve.input_psnr_db, curve.output_psnr_db
    ax_out.plot(x, y, color=colour, label=curve.label, **style)
    ax_gain.plot(x, y - x, color=colour, label=curve.label, **style)
    for x0 in curve.zero_gain_db:
        ax_gain.plot(
            [x0],
            [0.0],
            marker="X",
            markersize=9,
            color=colour,
            markeredgecolor="k",
            linestyle="none",
            zorder=5,
        )
        ax_gain.annotate(
            f"{x0:.1f}",
            (x0, 0.0),
            textcoords="offset points",
            # Alternate below/above the zero line so close crossings stay readable.
            xytext=(0, -16 if k % 2 == 0 else 10),
            ha="center",
            fontsize=8,
            color=colour,
            fontweight="bold",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )


def choose_zoom_box(clean: np.ndarray, *, fraction: float = 0.22) -> tuple[int, int, int]:
    """The square with the most structure (largest standard deviation) in ``clean``.

    Parameters
    ----------
    clean
        (H, W) float image.
    fraction
        Side of the square as a fraction of the shorter image side.

    Returns
    -------
    (row, col, size)
        Top-left corner and side, pixels.

    >>> img = np.zeros((40, 40)); img[30:, 30:] = 1.0
    >>> r, c, s = choose_zoom_box(img)
    >>> r + s > 30 and c + s > 30
    True
    """
    h, w = clean.shape
    size = max(4, int(round(min(h, w) * fraction)))
    stride = max(1, size // 3)
    best, best_std = (0, 0), -1.0
    for r in range(0, h - size + 1, stride):
        for c in range(0, w - size + 1, stride):
            std = float(np.std(clean[r : r + size, c : c + size]))
            if std > best_std:
                best, best_std = (r, c), std
    return best[0], best[1], size


def panel_figure(
    rows: list[list[tuple[str, np.ndarray]]],
    *,
    vmin: float,
    vmax: float,
    zoom_boxes: list[tuple[int, int, int]],
) -> bytes:
    """Image panels as the paper's Figs. 1 and 3, each image with a zoomed inset.

    Parameters
    ----------
    rows
        One list per test image of (title, (H, W) image) pairs, e.g. noisy, clean, N2N, N2C, filter.
    vmin, vmax
        Display window in the images' units (the same for every image, so they compare).
    zoom_boxes
        Per row, the (row, col, size) square shown magnified in the inset.

    Returns
    -------
    bytes
        PNG image.
    """
    n_cols = max(len(r) for r in rows)
    fig = new_figure(2.6 * n_cols, 2.85 * len(rows))
    axes = np.atleast_2d(fig.subplots(len(rows), n_cols, squeeze=False))
    for row_axes, row, (r0, c0, size) in zip(axes, rows, zoom_boxes, strict=True):
        h, w = row[0][1].shape
        # Put the inset in the corner farthest from the zoomed square so it hides nothing.
        inset_x = 0.02 if c0 + size / 2 > w / 2 else 0.56
        inset_y = 0.56 if r0 + size / 2 > h / 2 else 0.02
        for ax, (title, image) in zip(row_axes, row, strict=False):
            ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=9.5)
            ax.set_xticks([])
            ax.set_yticks([])
            style = {"cmap": "gray", "vmin": vmin, "vmax": vmax, "interpolation": "nearest"}
            zoom_inset(ax, image, (r0, c0, size), style, bounds=(inset_x, inset_y, 0.42, 0.42))
        for ax in row_axes[len(row) :]:
            ax.set_axis_off()
    return png_bytes(fig)


def training_figure(runs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """Validation PSNR and learning rate per epoch, one line per trained model.

    Parameters
    ----------
    runs
        Run label -> (epoch (E,), val_psnr_db (E,), lr (E,)); NaN entries are skipped.

    Returns
    -------
    bytes
        PNG image.
    """
    fig = new_figure(12.0, 3.8)
    ax_psnr, ax_lr = fig.subplots(1, 2)
    for colour, (label, (epoch, val_psnr_db, lr)) in zip(
        _MODEL_COLOURS * 4, runs.items(), strict=False
    ):
        ok = np.isfinite(val_psnr_db)
        ax_psnr.plot(
            epoch[ok],
            val_psnr_db[ok],
            color=colour,
            marker="o",
            markersize=3.5,
            linewidth=1.8,
            label=label,
        )
        ok = np.isfinite(lr) & (lr > 0)
        ax_lr.step(epoch[ok], lr[ok], where="post", color=colour, linewidth=1.8, label=label)
    style_axes(
        ax_psnr,
        xlabel="epoch",
        ylabel="selection score [dB]",
        title="(a) validation score (uPSNR: clean-free; PSNR: vs clean)",
    )
    style_axes(ax_lr, xlabel="epoch", ylabel="learning rate", title="(b) learning rate")
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax_lr.set_yscale("log")
    lr_text = FuncFormatter(lambda value, _pos: f"{value:.0e}")
    ax_lr.yaxis.set_major_formatter(lr_text)
    ax_lr.yaxis.set_minor_formatter(lr_text)
    for ax in (ax_psnr, ax_lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_psnr.legend(fontsize=8, frameon=False, loc="lower right")
    return png_bytes(fig)


def zoom_inset(
    ax,
    image: np.ndarray,
    box: tuple[int, int, int],
    style: dict,
    *,
    bounds: tuple[float, float, float, float],
    spine_width: float = 1.6,
) -> None:
    """Show the square ``box`` = (row, col, size) of ``image`` magnified in ``ax``.

    ``bounds`` is the inset's (x0, y0, width, height) in ``ax``'s axes fraction; ``style`` the
    ``imshow`` keywords of the main image (same window). The square is outlined on ``ax``.
    """
    from matplotlib.patches import Rectangle  # heavy: keeps `lowdose --help` fast

    r0, c0, size = box
    inset = ax.inset_axes(bounds)
    inset.imshow(image, **style)
    inset.set_xlim(c0 - 0.5, c0 + size - 0.5)
    inset.set_ylim(r0 + size - 0.5, r0 - 0.5)
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_edgecolor(ZOOM_COLOUR)
        spine.set_linewidth(spine_width)
    # A plain outline, not indicate_inset_zoom: its connector lines cross the image.
    ax.add_patch(
        Rectangle(
            (c0 - 0.5, r0 - 0.5), size, size, fill=False, linewidth=1.4, edgecolor=ZOOM_COLOUR
        )
    )
