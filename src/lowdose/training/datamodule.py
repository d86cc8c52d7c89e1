"""Training and validation data for training.run: resumable, DDP-sharded, seeded by epoch.

Every training sample is a pure function of ``(seed, epoch, draw)``: the epoch's order is a
permutation drawn from ``default_rng([seed, epoch])`` and ``PairDataset`` draws crops and flips
from ``default_rng([seed, epoch, index])`` (a repeat within a long epoch: its own stream, see
:mod:`lowdose.training.pairs`). The sampler yields ``(epoch, draw)`` keys, so worker
processes never need to be told the epoch, and a run resumed mid-epoch skips exactly the batches
it had already taken (the position lives in the checkpoint via ``PairDataModule.state_dict``).
Under DDP, rank ``r`` of ``R`` takes every ``R``-th sample of the same permutation, so the ranks'
batches together form the single-process global batch. With ``dose_range`` the training samples
are re-noised to a drawn fraction of the dose (:class:`PairDataset`); validation stays at the
acquired dose, so its score is comparable with a run without it. A re-planned run's epochs
differ in length (``config.step_plan``): the trainer then reloads the training loader every
epoch (the pairs are built once) and each epoch takes its own length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels
from lowdose.core.validation import checked_choice
from lowdose.data.dataset import load_split, read_info
from lowdose.training.pairs import PairDataset, dataset_renoiser
from lowdose.training.schedule import epoch_steps
from lowdose.training.windows import centre_crop


class EpochSampler(Sampler):
    """Yield ``(epoch, draw)`` keys for one rank's share of an epoch.

    An epoch longer than the split makes fresh permutations; pass ``p`` yields the draws
    ``p * n_items + item`` (:meth:`PairDataset.checked_draw`: the same item, a new window).

    Parameters
    ----------
    n_items
        Training pairs in the dataset.
    samples_per_epoch
        Global samples per epoch (``None``: ``n_items``); made a multiple of ``world_size``.
    seed, rank, world_size
        Permutation seed and this process's place in the DDP group.
    """

    def __init__(
        self, n_items: int, samples_per_epoch: int | None, *, seed: int, rank: int, world_size: int
    ) -> None:
        self.n_items, self.seed, self.rank, self.world_size = n_items, seed, rank, world_size
        total = samples_per_epoch or n_items
        self.per_rank = total // world_size
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """Make the next iteration start ``samples_done`` samples into ``epoch`` (once)."""
        self.epoch, self._skip = epoch, samples_done

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        order = self._global_order(epoch)
        mine = order[self.rank :: self.world_size][: self.per_rank]
        for index in mine[skip:]:
            yield epoch, int(index)

    def _global_order(self, epoch: int) -> np.ndarray:
        needed = self.per_rank * self.world_size
        passes = -(-needed // self.n_items)  # ceil: long epochs repeat fresh permutations
        # pass p yields draws p * n_items + item: the item again, with a crop of its own
        orders = [
            np.random.default_rng([self.seed, epoch, p]).permutation(n) + p * n
            for p, n in ((p, self.n_items) for p in range(passes))
        ]
        return np.concatenate(orders)[:needed]


class EpochKeyed(Dataset):
    """Map ``(epoch, index)`` keys onto a ``PairDataset`` (sets its epoch in whichever process)."""

    def __init__(self, pairs: Dataset) -> None:
        self.pairs = pairs
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        if epoch != self._epoch:
            self.pairs.set_epoch(epoch)
            self._epoch = epoch
        return self.pairs.draw(index)

    def __getitems__(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        # A whole batch in one call (DataLoader uses it when present): one vectorised gather in
        # memory instead of a Python call per sample. Keys of one batch share their epoch.
        epoch = keys[0][0]
        if epoch != self._epoch:
            self.pairs.set_epoch(epoch)
            self._epoch = epoch
        return self.pairs.sample_batch([index for _, index in keys])


def _stacked(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate for batches that ``EpochKeyed.__getitems__`` already stacked."""
    return batch


def _fits_in_memory(path: Path, mode: str, *, limit_bytes: float = 2e9) -> bool:
    # Only n2c holds the clean images in memory (the other modes never read them).
    info = read_info(path)
    _, n_real, height, width = info.shape
    n_train = int(np.sum(info.split == "train"))
    with_clean = int(mode == "n2c" and info.has_clean)
    return n_train * (n_real + with_clean) * height * width * 4 <= limit_bytes


def validation_tensors(
    path: Path, *, crop: int | None, reference: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validation inputs, their references, and each reference's noise variance.

    Parameters
    ----------
    path : Path
        Dataset file with a ``val`` split.
    crop : int or None
        Centre crop (pixels) of every image, or None for whole images.
    reference : {"realisation", "clean", "self"}
        ``"self"`` (nb2nb, n2v): realisation 0 of each image, trimmed to an even size (2x2 cells
        for nb2nb); the references are the inputs themselves and the noise variance 0: the
        module scores its own objective on them, and ``clean`` is never read.
        ``"realisation"``: the file's ``clean`` array is never read; realisation 0 is scored
        against realisation 1 and realisation 1 against realisation 0 (both directions: half the
        variance of one), with ``Var(y1 - y2) / 2`` of each (cropped) pair as the noise variance
        the unbiased score subtracts. ``"clean"``: realisation 0 against the clean image, noise
        variance 0.

    Returns
    -------
    inputs, references : torch.Tensor
        ``(V, 1, H, W)`` float32 on the dataset's scale; ``V = 2 I_val`` (realisation) or
        ``I_val`` (clean, self).
    noise_variance : torch.Tensor
        ``(V,)`` float64, the reference's noise variance on the dataset's scale.
    """
    checked_choice(reference, "val_reference", ("realisation", "clean", "self"))
    split = load_split(path, "val", with_clean=reference == "clean")
    noisy = np.asarray(split.noisy, dtype=np.float32)  # (I, N, H, W)
    if noisy.shape[0] == 0:
        raise LowdoseInputError(f"{path} has no 'val' images: rebuild it with a validation split")
    if reference == "clean":
        if split.clean is None:
            raise LowdoseInputError(
                f"{path} has no clean images to validate against: use --val-reference realisation"
            )
        inputs, references = noisy[:, 0], np.asarray(split.clean, dtype=np.float32)
    elif reference == "self":
        return _self_validation(noisy[:, 0], crop)
    elif noisy.shape[1] >= 2:
        inputs = np.concatenate([noisy[:, 0], noisy[:, 1]])
        references = np.concatenate([noisy[:, 1], noisy[:, 0]])
    else:
        raise LowdoseInputError(
            f"{path} has 1 realisation per image: --val-reference realisation needs 2; use "
            "--val-reference self (with --mode nb2nb or n2v) or clean on simulated data"
        )
    fov = None if split.fov is None else np.tile(split.fov, (len(inputs) // len(split.fov), 1, 1))
    if crop is not None:
        inputs, references = centre_crop(inputs, crop), centre_crop(references, crop)
        fov = None if fov is None else centre_crop(fov, crop)
    if reference == "clean":
        variance = np.zeros(len(inputs))
    else:
        # Var(y1 - y2) / 2 of each cropped pair (inside the field of view), the same for both
        # directions of the pair.
        half = len(inputs) // 2
        inside = None if fov is None else fov[:half]
        variance = np.tile(
            pair_noise_variance_all_pixels(inputs[:half], references[:half], inside=inside), 2
        )
    if fov is not None:  # out-of-field pixels: NaN references, never scored (module.py)
        references = np.where(fov, references, np.float32(np.nan))
    inputs_t = torch.from_numpy(np.ascontiguousarray(inputs[:, None]))  # (V, 1, H, W)
    references_t = torch.from_numpy(np.ascontiguousarray(references[:, None]))
    return inputs_t, references_t, torch.from_numpy(variance.astype(np.float64))


def _self_validation(images: np.ndarray, crop: int | None):
    """(V, H, W) images -> the three validation tensors of ``reference="self"``."""
    if crop is not None:
        images = centre_crop(images, crop)
    even = images[:, : images.shape[1] // 2 * 2, : images.shape[2] // 2 * 2]
    inputs = torch.from_numpy(np.ascontiguousarray(even[:, None]))  # (V, 1, H, W)
    return inputs, inputs, torch.zeros(len(even), dtype=torch.float64)


class PairDataModule(L.LightningDataModule):
    """Loaders for one run; its ``state_dict`` is the training position (epoch, batches done)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self._resume: dict | None = None
        self._pairs: PairDataset | None = None  # built once, reused by every epoch's loader
        if config.data.dose_range is not None:  # a dataset that cannot be re-noised fails first
            dataset_renoiser(config.data.path)

    def train_dataloader(self) -> DataLoader:

        data, mode, seed = self.config.data, self.config.model.mode, self.config.runtime.seed
        world, rank = self.trainer.world_size, self.trainer.global_rank
        if data.batch_size % world:
            raise LowdoseInputError(
                f"batch_size {data.batch_size} is global: make it a multiple of {world} processes"
            )
        if self._pairs is None:
            self._pairs = PairDataset(
                data.path,
                "train",
                mode=mode,
                patch=data.patch,
                augment=data.augment,
                seed=seed,
                dose_range=data.dose_range,
                in_memory=_fits_in_memory(data.path, mode),
            )
        pairs = self._pairs
        if len(pairs) == 0:
            raise LowdoseInputError(f"{data.path} has no 'train' images for mode {mode}")
        epoch = self.trainer.current_epoch if self._resume is None else self._resume["epoch"]
        samples = self._samples_in_epoch(epoch)
        sampler = EpochSampler(len(pairs), samples, seed=seed, rank=rank, world_size=world)
        per_rank_batch = data.batch_size // world
        if self._resume is not None:
            sampler.resume_at(self._resume["epoch"], self._resume["batches_done"] * per_rank_batch)
            self._resume = None
        return DataLoader(
            EpochKeyed(pairs),
            batch_size=per_rank_batch,
            sampler=sampler,
            drop_last=len(sampler) >= per_rank_batch,
            num_workers=self.config.runtime.workers,
            collate_fn=_stacked,
            persistent_workers=False,
            pin_memory=False,
        )

    def _samples_in_epoch(self, epoch: int) -> int | None:
        """Global samples of ``epoch``: the plan's steps x batch for a re-planned run."""
        plan = self.config.schedule.step_plan
        if plan is None:
            return self.config.schedule.samples_per_epoch
        lengths = epoch_steps(plan)
        return lengths[min(epoch, len(lengths) - 1)] * self.config.data.batch_size

    def val_dataloader(self) -> DataLoader:
        # Every rank validates every image: the PSNR is then identical on all ranks (no reduction
        # of unequal shards), and validation is cheap next to training.
        data = self.config.data
        tensors = validation_tensors(data.path, crop=data.val_crop, reference=data.val_reference)
        return DataLoader(TensorDataset(*tensors), batch_size=4, shuffle=False)

    def state_dict(self) -> dict:
        loop = self.trainer.fit_loop.epoch_loop
        batches_done = loop.batch_progress.current.processed
        epoch = self.trainer.current_epoch
        if batches_done >= self.trainer.num_training_batches:  # saved at the end of an epoch
            epoch, batches_done = epoch + 1, 0
        return {"epoch": epoch, "batches_done": batches_done}

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state)
