"""Training pairs from a dataset file: Noise2Noise (realisation i -> j), Noise2Clean (i -> clean)
or a single-acquisition mode (nb2nb, n2v: realisation i -> itself; the objective makes its own
pairs from one patch, see :mod:`lowdose.training.objectives`).

Item ``k`` of a split is fully determined by ``(seed, epoch, k)``: its random crop and its
dihedral transform come from ``numpy.random.default_rng([seed, epoch, k])``, so a batch does not
depend on how many DataLoader workers made it. The HDF5 file is opened lazily, once per process
(the handle is dropped when pickled and reopened after a fork), so a split larger than RAM
streams image by image. ``in_memory=True`` reads the split once; :meth:`PairDataset.sample_batch`
fills a whole batch into preallocated arrays (the DataLoader finds it through ``__getitems__``),
so a batch of 16 64x64 pairs costs ~1.5 ms instead of ~12 ms per item-by-item HDF5 reads.

Epochs: call :meth:`PairDataset.set_epoch` before each epoch, with ``persistent_workers=False``
(the default) so that workers receive the new epoch.
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
from lowdose.data.dataset import load_split, read_info, split_index


def dihedral(images: np.ndarray, transform: int) -> np.ndarray:
    """Apply one of the 8 dihedral transforms to the last two axes.

    ``transform`` in 0..7: rotate by ``90 * (transform % 4)`` degrees (numpy.rot90), then, for
    ``transform >= 4``, mirror left-right. 0 is the identity. Returns a view when possible.
    """
    out = np.rot90(images, k=transform % 4, axes=(-2, -1))
    return out[..., ::-1] if transform >= 4 else out


def undo_dihedral(images: np.ndarray, transform: int) -> np.ndarray:
    """Inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, t), t) == x``."""
    out = images[..., ::-1] if transform >= 4 else images
    return np.rot90(out, k=-(transform % 4), axes=(-2, -1))


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

    def __len__(self) -> int:
        return len(self.rows) * len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (>= 0) whose crops and transforms the items use."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise LowdoseInputError(f"epoch={epoch!r} must be an integer >= 0")
        self.epoch = int(epoch)

    def source(self, k: int) -> tuple[int, int, int]:
        """``(row in file, input realisation, target realisation or -1 for clean)`` of item k."""
        position, pair = divmod(self.checked_index(k), len(self.pairs))
        return int(self.rows[position]), int(self.pairs[pair, 0]), int(self.pairs[pair, 1])

    def augmentation(self, k: int) -> tuple[int, int, int]:
        """``(top row, left column, dihedral transform)`` of item k in the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, self.checked_index(k)])
        top = int(rng.integers(0, self.image_shape[0] - self.patch_shape[0] + 1))
        left = int(rng.integers(0, self.image_shape[1] - self.patch_shape[1] + 1))
        transform = (
            int(self._transforms[rng.integers(len(self._transforms))]) if self.augment else 0
        )
        return top, left, transform

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        source, target, transform = self._windows(k)
        return _tensor(dihedral(source, transform)), _tensor(dihedral(target, transform))

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
        if self._arrays is not None:
            position = int(k) // len(self.pairs)  # views, no copy
            source = self._arrays.noisy[position, i][window]
            target = self._arrays.noisy[position, j] if j >= 0 else self._arrays.clean[position]
            fov = self._arrays.fov[position][window] if self._mask_targets else None
            return source, _outside_nan(target[window], fov), transform
        handle = self._file()
        source = handle["noisy"][(row, i, *window)]
        if j == i:  # single-acquisition modes: the patch is its own target, read it once
            return source, source, transform
        target = handle["noisy"][(row, j, *window)] if j >= 0 else handle["clean"][(row, *window)]
        fov = handle["fov"][(row, *window)] if self._mask_targets else None
        return source, _outside_nan(target, fov), transform

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

    def checked_index(self, k) -> int:
        """Return item ``k`` as int; IndexError (the Dataset protocol) outside ``0..len - 1``."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < len(self):
            raise IndexError(f"item {k!r} is outside 0..{len(self) - 1}")
        return int(k)


def checked_patch_shape(patch, height: int, width: int, path: Path) -> tuple[int, int]:
    """``(patch, patch)``, or the whole image for None; raises unless 1 <= patch <= min(H, W)."""
    if patch is None:
        return height, width
    if isinstance(patch, bool) or not isinstance(patch, int | np.integer) or patch < 1:
        raise LowdoseInputError(f"patch={patch!r} must be a positive integer or None")
    if patch > min(height, width):
        raise LowdoseInputError(
            f"{path}: patch {patch} is larger than the {height}x{width} images; use <= "
            f"{min(height, width)} or None"
        )
    return int(patch), int(patch)


def _pairs(mode: str, n: int) -> np.ndarray:
    """(P, 2) int (input realisation, target realisation or -1 for clean) of one image."""
    if mode == "n2n":
        return np.array([(i, j) for i in range(n) for j in range(n) if i != j])
    if mode == "n2c":
        return np.array([(i, -1) for i in range(n)])
    return np.array([(i, i) for i in range(n)])  # single acquisition: the patch is its target


def _outside_nan(target: np.ndarray, fov: np.ndarray | None) -> np.ndarray:
    """``target`` with NaN where ``fov`` is 0 (a new array), or ``target`` itself."""
    return target if fov is None else np.where(fov.astype(bool), target, np.float32(np.nan))


def _tensor(image: np.ndarray) -> torch.Tensor:
    """(p, p) array -> contiguous float32 tensor (1, p, p) that owns its memory."""
    return torch.from_numpy(np.array(image, dtype=np.float32, order="C"))[None]
