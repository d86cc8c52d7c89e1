"""Training pairs from a dataset file: Noise2Noise (realisation i -> j), Noise2Clean (i -> clean)
or a single-acquisition mode (nb2nb, n2v: realisation i -> itself; the objective makes its own
pairs from one patch, see :mod:`lowdose.training.objectives`).

Item ``k`` of a split is fully determined by ``(seed, epoch, k)``: its random crop and its
dihedral transform come from ``numpy.random.default_rng([seed, epoch, k])``, so a batch does not
depend on how many DataLoader workers made it. An epoch longer than the split draws each item
again: draw ``d = r * len + k`` is item ``k``'s ``r``-th repeat, with its own crop, transform and
dose from ``default_rng([seed, epoch, k, ..., REPEAT_STREAM, r])`` (``r = 0`` keeps the keys
above), so a long epoch does not show the same windows over and over.

The HDF5 file is opened lazily, once per process (the handle is dropped when pickled and reopened
after a fork), so a split larger than RAM streams image by image. ``in_memory=True`` reads the split
once; :meth:`PairDataset.sample_batch` fills a whole batch into preallocated arrays (the DataLoader
finds it through ``__getitems__``), so a batch of 16 64x64 pairs costs ~1.5 ms instead of ~12 ms per
item-by-item HDF5 reads.

Epochs: call :meth:`PairDataset.set_epoch` before each epoch, with ``persistent_workers=False``
(the default) so that workers receive the new epoch.

With ``dose_range``, item ``k`` is also re-noised to a dose fraction drawn from its own stream
``default_rng([seed, epoch, k, DOSE_STREAM])`` (crops unchanged; a resume draws the same doses),
input and target *independently* (:mod:`lowdose.physics.dose_thinning`), so a Noise2Noise pair
stays valid; no clean image is read for it, and ``n2c`` re-noises its input only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_choice
from lowdose.data.dataset import load_split, read_info, read_scale, split_index
from lowdose.physics.dose_thinning import DoseRenoiser, dose_renoiser
from lowdose.training.config_groups import parse_dose_range
from lowdose.training.windows import checked_patch_shape, dihedral, outside_nan, tensor

DOSE_STREAM = 0x646F7365
"""Last key of an item's dose stream ``default_rng([seed, epoch, k, DOSE_STREAM])`` ("dose")."""
REPEAT_STREAM = 0x72657074
"""Key before ``r`` in the streams of an item's ``r``-th repeat within one epoch ("rept")."""


class PairDataset(Dataset):
    """(input, target) training pairs of one split, as float32 tensors ``(1, p, p)``.

    Parameters
    ----------
    path : str or PathLike
        Dataset file (see :mod:`lowdose.data.dataset`).
    split : {"train", "val", "test"}
    mode : {"n2n", "n2c", "nb2nb", "n2v"}
        ``"n2n"``: every ordered pair (i, j), i != j, of the N realisations, so
        ``len = I_split * N * (N - 1)``; needs N >= 2. ``"n2c"``: (realisation i, clean),
        ``len = I_split * N``; needs clean images in the file. ``"nb2nb"``, ``"n2v"``: every
        realisation is an independent item whose target is the same patch, ``len = I_split * N``
        with N >= 1. Only ``n2c`` ever reads the ``clean`` array.
    patch : int or None
        Square crop side in pixels, <= the image size; None gives whole images (then, for
        non-square images, only the 4 transforms that keep the shape are drawn).
    augment : bool
        Draw one of the 8 dihedral transforms per item (the same for input and target).
        The crop position is drawn either way.
    seed : int
        >= 0; with the epoch and the item index it fixes every random choice.
    in_memory : bool
        Read the split into RAM once (fast batched path); otherwise read per item.
    dose_range : (float, float) or None
        ``(low, high)``, ``0 < low <= high <= 1``: re-noise each item to a dose fraction drawn
        log-uniformly in that range (:meth:`dose_fraction`); the file must hold Poisson or
        Gaussian noise with its ``noise_level`` (:func:`dataset_renoiser`). None: as stored.

    Item ``k`` is image ``k // P`` of the split (in file order) with pair ``k % P``, where
    ``P = N (N - 1)`` (n2n, pairs ordered (0,1), (0,2), ..., (1,0), ...) or ``P = N`` (n2c:
    pairs (i, -1); nb2nb, n2v: pairs (i, i)).
    """

    def __init__(
        self,
        path,
        split: str,
        mode: Literal["n2n", "n2c", "nb2nb", "n2v"] = "n2n",
        patch: int | None = 64,
        augment: bool = True,
        seed: int = 0,
        *,
        in_memory: bool = False,
        dose_range: tuple[float, float] | None = None,
    ):
        self.path = Path(path)
        info = read_info(self.path)
        self.rows = split_index(info, split)  # (I_split,) rows in the file
        _, n, height, width = info.shape
        checked_choice(mode, "mode", ("n2n", "n2c", "nb2nb", "n2v"))
        if mode == "n2c" and not info.has_clean:
            raise LowdoseInputError(f"{self.path}: mode 'n2c' needs clean images; use 'n2n'")
        if mode == "n2n" and n < 2:
            raise LowdoseInputError(f"{self.path}: mode 'n2n' needs >= 2 realisations, has {n}")
        self.patch_shape = checked_patch_shape(patch, height, width, self.path)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise LowdoseInputError(f"seed={seed!r} must be an integer >= 0")
        self.split, self.mode, self.augment, self.seed = split, mode, bool(augment), int(seed)
        self.image_shape = (height, width)
        self.n_realisations = n
        self.pairs = _pairs(mode, n)  # (P, 2)
        square = self.patch_shape[0] == self.patch_shape[1]
        self._transforms = np.arange(8) if square else np.array([0, 2, 4, 6])
        self.epoch = 0
        # Only n2c reads the clean array, so no clean image can reach a clean-free training.
        self._arrays = load_split(self.path, split, with_clean=mode == "n2c") if in_memory else None
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        # Out-of-field pixels (the file's optional `fov`) become NaN targets, which the
        # supervised objectives never score; single-acquisition targets are the input itself.
        with h5py.File(self.path, "r") as handle:
            self._mask_targets = "fov" in handle and mode in ("n2n", "n2c")
        self.dose_range = None if dose_range is None else _checked_range(dose_range)
        self._renoiser = None if dose_range is None else dataset_renoiser(self.path)
        self._scale = read_scale(self.path)[self.rows] if dose_range is not None else None

    def __len__(self) -> int:
        return len(self.rows) * len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (>= 0) whose crops and transforms the items use."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise LowdoseInputError(f"epoch={epoch!r} must be an integer >= 0")
        self.epoch = int(epoch)

    def source(self, k: int) -> tuple[int, int, int]:
        """``(row in file, input realisation, target realisation or -1 for clean)`` of draw k."""
        position, pair = divmod(self.checked_draw(k)[0], len(self.pairs))
        return int(self.rows[position]), int(self.pairs[pair, 0]), int(self.pairs[pair, 1])

    def augmentation(self, k: int) -> tuple[int, int, int]:
        """``(top row, left column, dihedral transform)`` of draw k in the current epoch."""
        rng = self._stream(k)
        top = int(rng.integers(0, self.image_shape[0] - self.patch_shape[0] + 1))
        left = int(rng.integers(0, self.image_shape[1] - self.patch_shape[1] + 1))
        transform = (
            int(self._transforms[rng.integers(len(self._transforms))]) if self.augment else 0
        )
        return top, left, transform

    def dose_fraction(self, k: int) -> float:
        """Item k's dose fraction this epoch: log-uniform in ``dose_range`` (else 1.0), so each
        factor of dose is drawn equally often (0.02..1 trains the noisy end as much as the top)."""
        return self._dose_stream(k)[0]

    def _dose_stream(self, k: int) -> tuple[float, np.random.Generator | None]:
        """Item k's dose fraction and its stream, positioned after that draw (None: no range)."""
        if self.dose_range is None:
            self.checked_draw(k)
            return 1.0, None
        rng = self._stream(k, DOSE_STREAM)
        low, high = np.log(self.dose_range)
        return float(np.exp(rng.uniform(low, high))), rng

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.draw(self.checked_index(k))

    def draw(self, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input, target)`` float32 ``(1, p, p)`` of draw ``d`` (``d >= len``: a repeat)."""
        source, target, transform = self._windows(d)
        return tensor(dihedral(source, transform)), tensor(dihedral(target, transform))

    def __getitems__(self, indices) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Called by DataLoader with a whole batch of indices; the default collate then stacks.
        inputs, targets = self.sample_batch(indices)
        return list(zip(inputs.unbind(0), targets.unbind(0), strict=True))

    def sample_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``indices`` stacked: ``(inputs, targets)``, each float32 ``(B, 1, p, p)``.

        Equal to stacking ``self[k]``, with one copy per window into preallocated arrays
        (with ``in_memory=True`` about 0.1 ms per 64x64 item, no HDF5 access).
        """
        ks = list(indices)
        inputs = np.empty((len(ks), 1, *self.patch_shape), dtype=np.float32)
        targets = np.empty_like(inputs)
        for b, k in enumerate(ks):
            source, target, transform = self._windows(k)
            inputs[b, 0] = dihedral(source, transform)
            targets[b, 0] = dihedral(target, transform)
        return torch.from_numpy(inputs), torch.from_numpy(targets)

    def _windows(self, k) -> tuple[np.ndarray, np.ndarray, int]:
        """Untransformed (p, p) input and target windows of item k, and its transform."""
        row, i, j = self.source(k)
        top, left, transform = self.augmentation(k)
        window = (slice(top, top + self.patch_shape[0]), slice(left, left + self.patch_shape[1]))
        position = self.checked_draw(k)[0] // len(self.pairs)
        source, target, fov = self._read_windows(position, row, (i, j), window)
        if self._renoiser is not None:
            source, target = self._at_drawn_dose(k, position, source, target, (i, j))
        return source, outside_nan(target, fov), transform

    def _read_windows(self, position: int, row: int, pair: tuple[int, int], window):
        """(source, target, fov or None) windows of one item, as stored (target: no NaN yet)."""
        i, j = pair
        if self._arrays is not None:  # views, no copy
            source = self._arrays.noisy[position, i][window]
            target = self._arrays.noisy[position, j] if j >= 0 else self._arrays.clean[position]
            fov = self._arrays.fov[position][window] if self._mask_targets else None
            return source, target[window], fov
        handle = self._file()
        source = handle["noisy"][(row, i, *window)]
        if j == i:  # single-acquisition modes: the patch is its own target, read it once
            return source, source, None
        target = handle["noisy"][(row, j, *window)] if j >= 0 else handle["clean"][(row, *window)]
        fov = handle["fov"][(row, *window)] if self._mask_targets else None
        return source, target, fov

    def _at_drawn_dose(self, k: int, position: int, source, target, pair: tuple[int, int]):
        """Input and target windows re-noised, independently, to item k's dose fraction."""
        dose, rng = self._dose_stream(k)
        scale = self._scale[position]
        new_source = self._renoiser.at_dose(source, dose, scale=scale, rng=rng)
        if pair[1] < 0:  # n2c: the clean target stays clean
            return new_source, target
        if pair[1] == pair[0]:  # single acquisition: the patch is its own target
            return new_source, new_source
        return new_source, self._renoiser.at_dose(target, dose, scale=scale, rng=rng)

    def close(self) -> None:
        """Close this process's HDF5 handle (it reopens on the next item)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle, self._pid = None, None

    def __getstate__(self) -> dict:
        # An open h5py handle cannot be pickled (spawned workers); each process opens its own.
        state = self.__dict__.copy()
        state["_handle"], state["_pid"] = None, None
        return state

    def _file(self) -> h5py.File:
        # After a fork the parent's handle is inherited but unsafe to share: open a fresh one.
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def checked_draw(self, draw) -> tuple[int, int]:
        """``(item k, repeat r)`` of draw ``draw = r * len + k`` (>= 0; IndexError otherwise)."""
        if isinstance(draw, bool) or not isinstance(draw, int | np.integer) or draw < 0:
            raise IndexError(f"draw {draw!r} must be an integer >= 0")
        repeat, item = divmod(int(draw), len(self))
        return item, repeat

    def _stream(self, draw, *keys: int) -> np.random.Generator:
        """The generator of draw ``draw``'s crop (no keys) or dose (``DOSE_STREAM``)."""
        item, repeat = self.checked_draw(draw)
        tail = (REPEAT_STREAM, repeat) if repeat else ()
        return np.random.default_rng([self.seed, self.epoch, item, *keys, *tail])

    def checked_index(self, k) -> int:
        """Return item ``k`` as int; IndexError (the Dataset protocol) outside ``0..len - 1``."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < len(self):
            raise IndexError(f"item {k!r} is outside 0..{len(self) - 1}")
        return int(k)


def dataset_renoiser(path) -> DoseRenoiser:
    """How a dataset file's realisations are re-noised to a lower dose (from its attributes).

    Raises ``LowdoseInputError`` naming the file for sinogram-noise CT, measured data or a file
    without its noise level (:func:`lowdose.physics.dose_thinning.dose_renoiser`).
    """
    attrs = read_info(path).attrs
    return dose_renoiser(attrs.noise_model, attrs.noise_level, where=str(path))


def _checked_range(dose_range) -> tuple[float, float]:
    """:func:`lowdose.training.config.parse_dose_range` (the one rule), as a user error."""
    try:
        return parse_dose_range(dose_range)
    except ValueError as error:
        raise LowdoseInputError(f"dose_range={dose_range!r}: {error}") from None


def _pairs(mode: str, n: int) -> np.ndarray:
    """(P, 2) int (input realisation, target realisation or -1 for clean) of one image."""
    if mode == "n2n":
        return np.array([(i, j) for i in range(n) for j in range(n) if i != j])
    if mode == "n2c":
        return np.array([(i, -1) for i in range(n)])
    return np.array([(i, i) for i in range(n)])  # single acquisition: the patch is its target
