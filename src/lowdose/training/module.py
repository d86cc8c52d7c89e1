"""One LightningModule for every training mode: modes differ only in the pairs and the loss.

The loss of each mode is an objective of :mod:`lowdose.training.objectives` (Noise2Noise and
Noise2Clean: the data's target; Neighbor2Neighbor and Noise2Void: sub-samplers or blind spots
drawn from a ``torch.Generator`` seeded by ``(seed, global_step)``, so a resumed run draws the
same masks).

The paper's recipe: Adam, lr 1e-3, the learning rate halved after 2 epochs in which the validation
score did not improve (``ReduceLROnPlateau``, mode max, factor 0.5, patience 2). The score that
selects ``best.ckpt`` and drives the schedule (:attr:`DenoiseModule.monitor`) depends on what
validation is measured against (``val_reference``):

* ``"realisation"`` (Noise2Noise's default; no clean image is read): the prediction of realisation
  i is compared with realisation j != i. With independent zero-mean noise
  ``E|f(y1) - y2|^2 = E|f(y1) - x|^2 + sigma^2``, so
  ``uMSE = mean((f(y1) - y2)^2) - sigma_hat^2`` with ``sigma_hat^2 = Var(y1 - y2) / 2`` of each
  validation pair is an unbiased estimate of the MSE against the unknown clean image;
  ``val_upsnr_db = 10 log10(1 / mean over images of uMSE)`` (NaN if that mean is <= 0) is logged
  and monitored. ``val_psnr_db`` is then the raw PSNR against the other realisation, and
  ``val_pair_db = 10 log10(1 / mean raw MSE)`` the same pair score before the noise is
  subtracted. Halves of one scan reconstructed from disjoint views (``view_split``) differ by
  complementary streaks too, so ``sigma_hat^2`` over-reads the noise and uMSE can go negative:
  they monitor ``val_pair_db``, which ranks epochs as uMSE does and is always defined.
* ``"clean"``: ``val_psnr_db`` against the clean image is monitored (``clean-selected``).
* ``"self"`` (nb2nb, n2v; no clean image, one realisation): the mode's own loss on the validation
  images with masks that are the same every epoch (:func:`lowdose.training.objectives.self_score`:
  n2v's blind-spot squared error, whose expectation is the MSE to clean plus ``sigma^2``, or
  nb2nb's ``|f(g1 y) - g2 y|^2``), monitored as ``val_self_db = 10 log10(1 / mean loss)``
  (higher is better; not a PSNR to clean). ``val_psnr_db`` and ``val_upsnr_db`` are then NaN.

All use data_range 1 on the dataset's scale and unclipped outputs; ``val_psnr_db`` is the mean
over images of per-image PSNR. Every validation also scores the identity (the noisy input
returned unchanged) in the monitored score, on the same images and masks, and logs it as
``val_identity_db``: with ``"realisation"`` the uPSNR of ``y1`` against ``y2`` (about the input's
own PSNR; no clean image; view splits: its ``val_pair_db``), with ``"clean"`` the input's PSNR,
with nb2nb's ``"self"`` ``|g1 y - g2 y|^2`` in dB. It is NaN for n2v: under the blind spot the
identity becomes a copy of a neighbour pixel, and the input's own blind-spot score would need
the unknown noise variance. A model below it makes images worse than no denoising
(:class:`lowdose.models.validation_scores.ValidationScores`). A diverged model whose outputs
are not finite scores -inf dB (not NaN, which stays "undefined": a uMSE <= 0).

The budgeted recipe (:mod:`lowdose.training.budget`) uses ``schedule="cosine"`` instead of the
plateau: :func:`cosine_lr`, set before every optimiser step from the global step alone (no
validation score drives it), so a resumed run repeats it bit for bit; a re-planned run
(:mod:`lowdose.training.replan`) sets a :attr:`DenoiseModule.config` whose ``step_plan`` the
schedule follows (continuous in the step, :mod:`lowdose.training.schedule`).
"""

from __future__ import annotations

import random
import time
from functools import partial

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from lowdose.core.metrics import psnr_from_mse, upsnr_from_umse
from lowdose.models.unet import UNet
from lowdose.training.config import TrainConfig, val_monitor
from lowdose.training.objectives import OBJECTIVES, self_score
from lowdose.training.schedule import cosine_lr

_LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss}
_VAL_MASK_SEED = 20_240_601  # fixed: every epoch scores the same masks, so epochs compare


def _identity(images: torch.Tensor) -> torch.Tensor:
    """The do-nothing denoiser every validation scores beside the model."""
    return images


def _pair_scores(estimate, reference, noise_variance) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR (dB) and uMSE of ``estimate`` against ``reference``: two ``(B,)`` arrays.

    ``estimate`` and ``reference`` are ``(B, 1, H, W)``, NaN reference pixels (outside the field
    of view) left out; uMSE is the MSE less the reference's ``noise_variance`` ``(B,)`` (0
    against clean). An estimate with any non-finite pixel (a diverged network) has an infinite
    MSE: its scores are -inf dB, worse than any image, not an undefined NaN.
    """
    squared = ((estimate - reference) ** 2).flatten(1)  # (B, H*W); NaN outside the fov
    mean = torch.nanmean(squared, dim=1) if bool(reference.isnan().any()) else squared.mean(1)
    finite = torch.isfinite(estimate).flatten(1).all(dim=1).cpu().numpy()  # (B,)
    mse = np.where(finite, mean.double().cpu().numpy(), np.inf)  # (B,)
    # floor at 1e-20 (200 dB): a perfect image must not make the epoch's mean infinite
    psnr_db = psnr_from_mse(np.maximum(mse, 1e-20), data_range=1.0)  # (B,)
    return psnr_db, mse - noise_variance.cpu().numpy()


class DenoiseModule(L.LightningModule):
    """Train a ``UNet`` on (input, target) patch pairs and validate PSNR on whole images.

    Parameters
    ----------
    config
        The run's configuration: the objective and the U-Net (``model``), what validation scores
        against (``data.val_reference``), Adam and its schedule (``optimisation``, with
        ``schedule.max_steps`` and ``schedule.step_plan`` for the cosine), the seed of the masks
        of nb2nb and n2v and the speed options (``runtime``).
    view_split
        The realisations are reconstructions from disjoint view subsets of one scan: with
        ``"realisation"``, ``val_pair_db`` (raw PSNR to the other half) is monitored instead of
        ``val_upsnr_db`` (:data:`~lowdose.training.config.VIEW_SPLIT_MONITOR`).
    meta
        Provenance saved with the checkpoint: dataset scaling attributes, dataset SHA-256,
        ``val_reference``, seed and the run directory.
    """

    def __init__(
        self, config: TrainConfig, *, view_split: bool = False, meta: dict | None = None
    ) -> None:
        super().__init__()
        if config.optimisation.lr_schedule == "cosine" and config.schedule.max_steps is None:
            raise ValueError("schedule 'cosine' anneals to max_steps: give max_steps")
        network = {"in_channels": 1, "out_channels": 1, "width": config.model.width}
        # What the checkpoint records, as plain values (it loads with weights_only): the U-Net's
        # arguments, mode and loss for models.checkpoint.load_model, provenance, the config.
        self.save_hyperparameters(
            {
                "model": {**network, "residual": config.model.residual},
                "mode": config.model.mode,
                "loss": config.model.loss,
                "view_split": view_split,
                "meta": meta,
            }
        )
        self.config = config
        self.view_split = view_split
        self.model = UNet(**self.hparams.model)
        self._objective = partial(
            OBJECTIVES[config.model.mode], distance=_LOSSES[config.model.loss]
        )
        channels_last = config.runtime.channels_last
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Kept outside the module registry: a registered alias would duplicate the state_dict.
        object.__setattr__(self, "_compiled", None)
        self._val_sums: dict[str, float] = {}
        self._last_step_time: float | None = None

    @property
    def config(self) -> TrainConfig:
        """The run's configuration; a re-plan (:mod:`lowdose.training.replan`) sets a new one."""
        return self._config

    @config.setter
    def config(self, config: TrainConfig) -> None:
        self._config = config
        self.hparams["config"] = config.model_dump(mode="json")  # the checkpoint keeps the latest

    @property
    def monitor(self) -> str:
        """The logged score that selects ``best.ckpt`` and drives the plateau schedule."""
        return val_monitor(self.config.data.val_reference, view_split=self.view_split)

    def setup(self, stage: str) -> None:
        # Runs in every process (also DDP children), so thread and compile settings apply there.
        if self.config.runtime.threads:
            torch.set_num_threads(self.config.runtime.threads)
        if self.config.runtime.compile:
            object.__setattr__(self, "_compiled", torch.compile(self.model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``(B, 1, H, W)`` images on the dataset scale."""
        network = self._compiled or self.model
        return network(x.contiguous(memory_format=self._memory_format))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        noisy = batch[0]
        loss = self._objective(self, batch, self.mask_generator(self.global_step))
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        now = time.perf_counter()
        if self._last_step_time is not None:
            samples_per_s = noisy.shape[0] * self.trainer.world_size / (now - self._last_step_time)
            self.log("samples_s", samples_per_s, on_step=True, prog_bar=True, rank_zero_only=True)
        self._last_step_time = now
        return loss

    def mask_generator(self, step: int) -> torch.Generator:
        """CPU generator of the masks of optimiser step ``step``: a function of (seed, step)."""
        state = np.random.SeedSequence([self.config.runtime.seed, step]).generate_state(
            1, np.uint64
        )
        return torch.Generator().manual_seed(int(state[0]))

    def on_validation_epoch_start(self) -> None:
        # per-image sums of the model's ("psnr", "umse", "self") and the identity's
        # ("identity_*") scores, and the image count
        self._val_sums = dict.fromkeys(
            ("psnr", "umse", "mse", "self", "count")
            + ("identity_psnr", "identity_umse", "identity_mse", "identity_self"),
            0.0,
        )

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        noisy, reference, noise_variance = batch
        sums = self._val_sums
        sums["count"] += noisy.shape[0]
        if self.config.data.val_reference == "self":
            # the same masks for the model and the identity: a generator per call, same seed
            def loss(network) -> float:
                generator = torch.Generator().manual_seed(_VAL_MASK_SEED + batch_idx)
                mode = self.config.model.mode
                loss = self_score(mode, network, noisy, generator).cpu().numpy()  # (B,)
                return float(np.sum(np.where(np.isfinite(loss), loss, np.inf)))

            sums["self"] += loss(self)
            if self.config.model.mode == "nb2nb":  # n2v: the identity has no comparable score
                sums["identity_self"] += loss(_identity)
            return
        for prefix, estimate in (("", self(noisy).float()), ("identity_", noisy.float())):
            psnr_db, umse = _pair_scores(estimate, reference, noise_variance)
            sums[prefix + "psnr"] += float(np.sum(psnr_db))
            sums[prefix + "umse"] += float(np.sum(umse))
            sums[prefix + "mse"] += float(np.sum(umse + noise_variance.cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        self._last_step_time = None  # validation time is not training throughput
        sums = self._val_sums
        count = max(sums["count"], 1)
        reference = self.config.data.val_reference
        if reference == "self":
            # no clean image and no second realisation: the PSNR columns stay NaN
            self.log("val_psnr_db", float("nan"), sync_dist=False)
            self_db = psnr_from_mse(max(sums["self"] / count, 1e-20), data_range=1.0)
            self.log("val_self_db", self_db, prog_bar=True, sync_dist=False)
            identity_db = float("nan")
            if self.config.model.mode == "nb2nb":
                identity_mse = max(sums["identity_self"] / count, 1e-20)
                identity_db = psnr_from_mse(identity_mse, data_range=1.0)
            self.log("val_identity_db", identity_db, sync_dist=False)
            return
        self.log("val_psnr_db", sums["psnr"] / count, prog_bar=True, sync_dist=False)
        identity_db = sums["identity_psnr"] / count
        if reference == "realisation":
            # mean uMSE first, then dB: per-image uPSNRs of noisy estimates would be biased
            upsnr_db = upsnr_from_umse(sums["umse"] / count, data_range=1.0)
            self.log("val_upsnr_db", upsnr_db, prog_bar=True, sync_dist=False)
            identity_db = upsnr_from_umse(sums["identity_umse"] / count, data_range=1.0)
            # the raw pair score: the one that is monitored for view-split halves
            pair_db = psnr_from_mse(max(sums["mse"] / count, 1e-20), data_range=1.0)
            self.log("val_pair_db", pair_db, prog_bar=self.view_split, sync_dist=False)
            if self.view_split:
                identity_mse = max(sums["identity_mse"] / count, 1e-20)
                identity_db = psnr_from_mse(identity_mse, data_range=1.0)
        self.log("val_identity_db", float(identity_db), sync_dist=False)

    def configure_optimizers(self):
        optimisation = self.config.optimisation
        optimizer = torch.optim.Adam(self.model.parameters(), lr=optimisation.lr)
        if optimisation.lr_schedule == "cosine":
            return optimizer  # optimizer_step sets each step's rate
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=optimisation.lr_factor,
            patience=optimisation.lr_patience_epochs,
        )
        schedule = {"scheduler": plateau, "monitor": self.monitor, "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        # Warm-up and the cosine are functions of the global step alone, so a resumed run repeats
        # them exactly; warm-up overrides the plateau schedule only during its own steps.
        optimisation, schedule = self.config.optimisation, self.config.schedule
        warmup = optimisation.warmup_steps
        if optimisation.lr_schedule == "cosine":
            rate = cosine_lr(
                self.global_step,
                lr=optimisation.lr,
                warmup_steps=warmup,
                max_steps=schedule.max_steps,
                segments=schedule.step_plan,
                final_fraction=optimisation.lr_final_fraction,
            )
            for group in optimizer.param_groups:
                group["lr"] = rate
        elif warmup and self.global_step <= warmup:
            scale = min(1.0, (self.global_step + 1) / warmup)
            for group in optimizer.param_groups:
                group["lr"] = optimisation.lr * scale
        optimizer.step(closure=optimizer_closure)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain tensors and tuples only, so the checkpoint loads with torch's weights_only=True.
        # lowdose draws from explicit Generators; the legacy global state is what Lightning's
        # seed_everything sets and third-party code may read, so it is kept too.
        kind, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
            "python": random.getstate(),
        }
        checkpoint["unet_config"] = self.model.config()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states:
            torch.set_rng_state(states["torch"])
            kind, keys, position, has_gauss, cached = states["numpy"]
            legacy = (kind, keys.numpy().astype(np.uint32), position, has_gauss, cached)
            np.random.set_state(legacy)  # noqa: NPY002
            random.setstate(states["python"])
