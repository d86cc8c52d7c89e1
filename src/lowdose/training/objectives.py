"""The loss of each training mode, and the self-supervised validation score of the single ones.

Every mode trains the same network in the same LightningModule; only the objective differs.
An objective is ``objective(network, batch, generator, *, distance) -> loss`` where ``batch`` is
``(inputs, targets)`` of float32 ``(B, 1, p, p)`` patches, ``generator`` a CPU
``torch.Generator`` for any random masks (the module seeds it from ``(seed, global_step)``, so a
resumed run redraws the same masks) and ``distance`` the configured ``mse`` or ``mae`` loss.

* :func:`noise2noise` (modes ``n2n`` and ``n2c``): ``distance(f(input), target)``.
* :func:`neighbor2neighbor` (Huang et al., CVPR 2021): from one noisy patch ``y``, a random
  neighbour sub-sampler (:func:`neighbour_pairs`) takes two different, adjacent pixels of every
  2x2 cell, giving half-size images ``g1(y)``, ``g2(y)`` whose noise is independent while their
  signals nearly agree. Loss ``|f(g1 y) - g2 y|^2 + gamma |f(g1 y) - g2 y - (g1 f(y) - g2 f(y))|^2``
  with ``f(y)`` computed without gradient, as in the paper. ``gamma`` is constant,
  :data:`NB2NB_GAMMA` = 2 (the paper's final value; it ramps gamma linearly from 0 over training).
* :func:`noise2void` (Krull et al., CVPR 2019): a blind-spot mask (:func:`blind_spots`) picks one
  pixel in every :data:`N2V_CELL_PX` x :data:`N2V_CELL_PX` cell (1.6 %; CAREamics' default is
  0.2 %, one per 22x22, which gives a 64x64 patch only ~8 training pixels), replaces it by a random
  other pixel of its 5x5 neighbourhood, and the loss compares ``f(masked y)`` with ``y`` at the
  masked pixels only. Two masked pixels can fall within 2 px of each other (adjacent cells), so
  one may, rarely, receive the other's value: a leak on well under 0.1 % of masked pixels.

Both single-acquisition objectives assume pixel-independent noise
(:mod:`lowdose.core.noise_correlation` checks that). ``neighbour_pairs`` and ``blind_spots``
draw on the CPU, so masks are the same on any device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Network = Callable[[torch.Tensor], torch.Tensor]
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

NB2NB_GAMMA = 2.0
N2V_CELL_PX = 8
N2V_RADIUS_PX = 2

# The 2x2 cell's pixels as 0 (top-left), 1 (top-right), 2 (bottom-left), 3 (bottom-right); the
# 8 ordered pairs of edge-adjacent pixels, as the reference implementation of Neighbor2Neighbor.
_ADJACENT_FIRST = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
_ADJACENT_SECOND = torch.tensor([1, 2, 0, 3, 0, 3, 1, 2])
_OFFSETS = torch.tensor(
    [
        (dy, dx)
        for dy in range(-N2V_RADIUS_PX, N2V_RADIUS_PX + 1)
        for dx in range(-N2V_RADIUS_PX, N2V_RADIUS_PX + 1)
        if (dy, dx) != (0, 0)
    ]
)  # (24, 2): a blind spot never keeps its own value


def noise2noise(network: Network, batch, generator: torch.Generator, *, distance: Distance):
    """Supervised loss ``distance(f(input), target)`` (n2n: another realisation; n2c: clean).

    NaN target pixels lie outside the scanner's field of view (the dataset's ``fov``) and are
    left out of the loss; without any, the loss is exactly ``distance(f(input), target)``.
    """
    inputs, targets = batch[0], batch[1]
    outputs = network(inputs)
    inside = torch.isfinite(targets)
    if bool(inside.all()):
        return distance(outputs, targets)
    return distance(outputs[inside], targets[inside])


def neighbour_pairs(
    shape: tuple[int, int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a neighbour sub-sampler pair: which pixel of every 2x2 cell ``g1`` and ``g2`` take.

    Parameters
    ----------
    shape : (B, H, W)
        Batch size and image size (H, W even).
    generator : torch.Generator
        CPU generator the draws come from.

    Returns
    -------
    first, second : torch.Tensor
        int64 ``(B, H/2, W/2)`` position in each cell, 0..3 (row-major), always edge-adjacent
        and different.
    """
    batch, height, width = shape
    choice = torch.randint(0, 8, (batch, height // 2, width // 2), generator=generator)
    return _ADJACENT_FIRST[choice], _ADJACENT_SECOND[choice]


def subsample(images: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Half-size image of the chosen pixel of every 2x2 cell.

    ``images`` (B, C, H, W) with H, W even; ``position`` (B, H/2, W/2) from
    :func:`neighbour_pairs`. Returns (B, C, H/2, W/2), differentiable in ``images``.
    """
    b, c, h, w = images.shape
    cells = images.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
    cells = cells.reshape(b, c, h // 2, w // 2, 4)  # (B, C, H/2, W/2, 4)
    index = position.to(images.device)[:, None, :, :, None].expand(b, c, h // 2, w // 2, 1)
    return torch.gather(cells, 4, index)[..., 0]


def neighbor2neighbor(
    network: Network,
    batch,
    generator: torch.Generator,
    *,
    distance: Distance,
    gamma: float = NB2NB_GAMMA,
) -> torch.Tensor:
    """Neighbor2Neighbor loss of one batch (scalar); ``batch[0]`` is ``(B, 1, p, p)``, p even."""
    noisy = batch[0]
    first, second = neighbour_pairs((noisy.shape[0], *noisy.shape[2:]), generator)
    g1, g2 = subsample(noisy, first), subsample(noisy, second)
    with torch.no_grad():
        full = network(noisy)  # the paper's f(y): a regulariser target, no gradient through it
    estimate = network(g1)
    consistency = subsample(full, first) - subsample(full, second)
    return distance(estimate, g2) + gamma * distance(estimate - g2, consistency)


def blind_spots(
    shape: tuple[int, int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw Noise2Void blind spots and the neighbour each takes its value from.

    Parameters
    ----------
    shape : (B, H, W)
        Batch size and image size, H, W >= 5.
    generator : torch.Generator
        CPU generator the draws come from.

    Returns
    -------
    spots, sources : torch.Tensor
        int64 ``(B, K)`` flat pixel indices (``row * W + col``), ``K = (H // 8) * (W // 8)``:
        one uniformly placed spot per 8x8 cell, and for each a different pixel within 2 px
        (an offset that would leave the image is mirrored, so never the spot itself).
    """
    batch, height, width = shape
    cell = N2V_CELL_PX
    grid = (batch, height // cell, width // cell)
    corner_rows = torch.arange(grid[1])[None, :, None] * cell  # (1, H // cell, 1)
    corner_cols = torch.arange(grid[2])[None, None, :] * cell  # (1, 1, W // cell)
    rows = corner_rows + torch.randint(0, cell, grid, generator=generator)  # (B, ., .)
    cols = corner_cols + torch.randint(0, cell, grid, generator=generator)
    offset = _OFFSETS[torch.randint(0, len(_OFFSETS), grid, generator=generator)]  # (*grid, 2)
    source_rows = _inside(rows, offset[..., 0], height)
    source_cols = _inside(cols, offset[..., 1], width)
    spots = (rows * width + cols).reshape(batch, -1)
    return spots, (source_rows * width + source_cols).reshape(batch, -1)


def _inside(index: torch.Tensor, offset: torch.Tensor, size: int) -> torch.Tensor:
    # An offset that leaves the image is mirrored (index - offset): still non-zero, same length.
    moved = index + offset
    return torch.where((moved < 0) | (moved >= size), index - offset, moved)


def mask_blind_spots(images: torch.Tensor, spots: torch.Tensor, sources: torch.Tensor):
    """A copy of ``images`` (B, 1, H, W) with each spot replaced by its source pixel's value."""
    flat = images.reshape(images.shape[0], -1)
    spots, sources = spots.to(images.device), sources.to(images.device)
    masked = flat.scatter(1, spots, torch.gather(flat, 1, sources))
    return masked.reshape(images.shape)


def noise2void(
    network: Network, batch, generator: torch.Generator, *, distance: Distance
) -> torch.Tensor:
    """Noise2Void loss of one batch (scalar): ``distance`` at the blind spots only."""
    noisy = batch[0]
    spots, sources = blind_spots((noisy.shape[0], *noisy.shape[2:]), generator)
    estimate = network(mask_blind_spots(noisy, spots, sources))
    return distance(_at(estimate, spots), _at(noisy, spots))


def _at(images: torch.Tensor, spots: torch.Tensor) -> torch.Tensor:
    return torch.gather(images.reshape(images.shape[0], -1), 1, spots.to(images.device))


OBJECTIVES = {
    "n2n": noise2noise,
    "n2c": noise2noise,
    "nb2nb": neighbor2neighbor,
    "n2v": noise2void,
}
"""Mode -> training objective."""


def self_score(
    mode: str, network: Network, noisy: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Per-image self-supervised validation loss of a single-acquisition mode: (B,) float64.

    ``n2v``: squared error at the blind spots between ``f(masked y)`` and ``y``; for
    pixel-independent noise its expectation is the MSE to the clean image plus ``sigma^2``.
    ``nb2nb``: ``mean |f(g1 y) - g2 y|^2`` without the regulariser. ``noisy`` is (B, 1, H, W)
    (H, W even for nb2nb); the masks come from ``generator`` (fixed by the caller, so every
    epoch is scored on the same masks). Lower is better.
    """
    shape = (noisy.shape[0], *noisy.shape[2:])
    if mode == "nb2nb":
        first, second = neighbour_pairs(shape, generator)
        error = network(subsample(noisy, first)) - subsample(noisy, second)
        return error.float().pow(2).flatten(1).mean(dim=1).double()
    if mode == "n2v":
        spots, sources = blind_spots(shape, generator)
        estimate = network(mask_blind_spots(noisy, spots, sources))
        return (_at(estimate, spots) - _at(noisy, spots)).float().pow(2).mean(dim=1).double()
    raise ValueError(f"mode {mode!r} has no self-supervised score; use nb2nb or n2v")
