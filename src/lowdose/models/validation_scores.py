"""Did training help? The selected model's validation score beside its noisy input's.

A training run validates its model with one score (``monitor``: ``val_upsnr_db``,
``val_psnr_db`` or ``val_self_db``, :mod:`lowdose.training.module`) and scores the identity, the
noisy validation input returned unchanged, the same way on the same images (and masks). A model
whose score is below the identity's makes images worse than no denoising at all; a diverged
learning rate does that (a ``--budget`` run on quarter-dose CT once ended at 4.91 dB against its
input's 46.40 dB, silently). :class:`ValidationScores` holds the two numbers, as the run's
``manifest.json`` (``validation_scores``) and its ``best.ckpt`` (``hyper_parameters["meta"]
["scores"]``) record them, and :meth:`ValidationScores.warning` is the one line that
``lowdose train``, ``fit`` and ``denoise`` print then.

A residual network starts as the identity (its output convolution is zero-initialised), so the
identity is the run's own step-0 state: when no validation beats it, ``best.ckpt`` keeps that
state instead (:meth:`ValidationScores.with_identity_fallback`), and the run's output is its
input, never worse, with the one line saying so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ValidationScores:
    """The selected model's validation score and the identity's, in dB (higher is better).

    Attributes
    ----------
    monitor : str
        The score: ``"val_upsnr_db"`` (clean-free uPSNR against the other realisation),
        ``"val_psnr_db"`` (PSNR against clean images: clean-selected runs) or ``"val_self_db"``
        (``10 log10(1 / loss)`` of the nb2nb objective; not a PSNR to clean).
    model_db : float
        The score of the model in ``best.ckpt`` (the best validation of the run); -inf when its
        outputs were never finite (diverged); NaN when no validation finished or the score is
        undefined (a uPSNR whose uMSE is <= 0: an error below what the pair resolves).
    identity_db : float
        The identity's score on the same validation images (and masks); NaN where the identity
        cannot be scored like the model: Noise2Void's blind spot turns the identity into a
        copy of a neighbour pixel, and the noisy input's own blind-spot score would need the
        unknown noise variance.
    trained_db : float
        NaN, unless no validation beat the identity and ``best.ckpt`` fell back to the residual
        network's untrained state (the identity): then the best trained score (``model_db`` is
        then the identity's).
    """

    monitor: str
    model_db: float
    identity_db: float
    trained_db: float = math.nan

    @property
    def fell_back_to_identity(self) -> bool:
        """True when ``best.ckpt`` holds the identity because training never beat it."""
        return not math.isnan(self.trained_db)

    def with_identity_fallback(self) -> ValidationScores:
        """The scores of a ``best.ckpt`` reset to the identity (``trained_db`` keeps the best)."""
        return ValidationScores(self.monitor, self.identity_db, self.identity_db, self.model_db)

    @property
    def worse_than_identity(self) -> bool:
        """True when the identity's score is finite and the model's (not NaN) is below it."""
        return math.isfinite(self.identity_db) and self.model_db < self.identity_db  # NaN: False

    def warning(self, name: str) -> str | None:
        """One line for people when the model is worse than its input, else None.

        ``name`` says which model (the run directory or the checkpoint path).

        >>> ValidationScores("val_upsnr_db", 4.91, 46.40).warning("runs/ct")[:61]
        'runs/ct: validation score 4.91 dB (val_upsnr_db) is below the'
        >>> ValidationScores("val_upsnr_db", 40.0, 30.0).warning("runs/ct") is None
        True
        """
        if self.fell_back_to_identity:
            return (
                f"{name}: no validation beat the noisy input ({self.trained_db:.2f} dB at best "
                f"against its {self.identity_db:.2f} dB, {self.monitor}): best.ckpt holds the "
                "untrained residual network, the identity (output = input); train longer or at "
                "a lower --lr, and check metrics.csv"
            )
        if not self.worse_than_identity:
            return None
        return (
            f"{name}: validation score {self.model_db:.2f} dB ({self.monitor}) is below the "
            f"{self.identity_db:.2f} dB of its noisy input scored the same way: the model makes "
            "images worse than no denoising; keep the input, or retrain with a lower --lr (the "
            "learning rate likely diverged) or more steps, and check metrics.csv"
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ValidationScores:
        """Read the stored dict form (:meth:`to_dict`); ``KeyError``/``ValueError`` if malformed.

        >>> ValidationScores.from_dict({"monitor": "val_self_db", "model_db": 20.0,
        ...                             "identity_db": None}).identity_db
        nan
        """

        def decibels(value: Any) -> float:
            return math.nan if value is None else float(value)  # JSON has no NaN: null

        return cls(
            monitor=str(values["monitor"]),
            model_db=decibels(values["model_db"]),
            identity_db=decibels(values["identity_db"]),
            trained_db=decibels(values.get("trained_db")),  # absent in older files
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored dict form: floats, an undefined (NaN) score as None (JSON null)."""

        def stored(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "monitor": self.monitor,
            "model_db": stored(self.model_db),
            "identity_db": stored(self.identity_db),
            **({"trained_db": stored(self.trained_db)} if self.fell_back_to_identity else {}),
        }
