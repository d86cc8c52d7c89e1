"""The image-quality figures as PNG bytes: NPS curves and TTF curves per method.

Like :mod:`lowdose.report.figures` (whose canvas and axis style they share): matplotlib is imported
lazily, only the object-oriented API with the Agg canvas is used, and every function takes plain
arrays and returns the encoded PNG. The ``noisy`` FBP is drawn as the reference: black, dashed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lowdose.report.figures import new_figure, png_bytes, style_axes

REFERENCE_METHOD = "noisy"
_COLOURS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085", "#b7950b", "#5d6d7e")

Curve = tuple[np.ndarray, np.ndarray]
"""``(frequency_per_mm (F,), values (F,))``."""


def _line_style(method: str, k: int) -> dict:
    if method == REFERENCE_METHOD:
        return {"color": "black", "linestyle": "--", "linewidth": 2.0, "zorder": 3}
    return {"color": _COLOURS[k % len(_COLOURS)], "linewidth": 1.6}


def nps_figure(curves: Mapping[str, Curve]) -> bytes:
    """Radial NPS per method: (a) in HU^2 mm^2, (b) normalised to unit area (noise texture).

    Parameters
    ----------
    curves : mapping of method -> (frequency_per_mm (F,), nps_hu2mm2 (F,))
        In legend order.

    Returns
    -------
    bytes
        PNG image.
    """
    fig = new_figure(11.0, 3.8)
    ax_abs, ax_norm = fig.subplots(1, 2)
    for k, (method, (frequency, power)) in enumerate(curves.items()):
        style = _line_style(method, k)
        ax_abs.plot(frequency, power, label=method, **style)
        area = np.trapezoid(power, frequency) if frequency.size > 1 else 0.0
        if area > 0:
            ax_norm.plot(frequency, power / area, label=method, **style)
    style_axes(
        ax_abs,
        xlabel="spatial frequency [cycles/mm]",
        ylabel="NPS [HU² mm²]",
        title="(a) noise power spectrum (magnitude)",
    )
    style_axes(
        ax_norm,
        xlabel="spatial frequency [cycles/mm]",
        ylabel="NPS / its area [mm]",
        title="(b) normalised NPS (texture)",
    )
    ax_abs.set_yscale("log")
    ax_abs.legend(fontsize=8, frameon=False)
    return png_bytes(fig)


def ttf_figure(panels: Mapping[str, Mapping[str, Curve]], *, nyquist_per_mm: float) -> bytes:
    """TTF per method, one panel per insert.

    Parameters
    ----------
    panels : mapping of panel title -> (mapping of method -> (frequency_per_mm, ttf))
        One panel per insert (``"polystyrene (-35 HU)"``), curves in legend order.
    nyquist_per_mm : float
        The x axis ends here (``0.5 / pixel_mm``).

    Returns
    -------
    bytes
        PNG image.
    """
    fig = new_figure(4.0 * max(len(panels), 1) + 0.6, 3.6)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1)))
    for ax, (title, curves) in zip(axes, panels.items(), strict=False):
        for k, (method, (frequency, ttf)) in enumerate(curves.items()):
            keep = frequency <= nyquist_per_mm * (1 + 1e-9)
            ax.plot(frequency[keep], ttf[keep], label=method, **_line_style(method, k))
        ax.axhline(0.5, color="#9aa4b1", linewidth=0.8, linestyle=":")
        ax.set_xlim(0, nyquist_per_mm)
        ax.set_ylim(0, 1.05)
        style_axes(ax, xlabel="spatial frequency [cycles/mm]", ylabel="TTF", title=title)
    axes[0].legend(fontsize=8, frameon=False, loc="upper right")
    return png_bytes(fig)
