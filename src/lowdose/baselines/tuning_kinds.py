"""The names of the ways a filter's setting is chosen (``--tuning``), and how a list is read.

``oracle``, ``blind``, ``blind-clean`` (:mod:`lowdose.baselines.tuning`), ``blind-sigma``
(:mod:`lowdose.baselines.sigma_rule`) and BM3D given the noise power spectrum: ``blind-psd``,
``blind-psd-image``, ``single-psd``, ``oracle-psd``
(:mod:`lowdose.baselines.spectrum_tuning`; run by :mod:`lowdose.evaluation.spectrum_methods`).
Kept apart from the searches so that configuration can check a value without importing them.
"""

from __future__ import annotations

from lowdose.core.errors import LowdoseInputError

#: the tunings of BM3D given a noise power spectrum
PSD_TUNINGS = ("blind-psd", "blind-psd-image", "single-psd", "oracle-psd")
#: the single tunings
TUNING_KINDS = ("oracle", "blind", "blind-clean", "blind-sigma", *PSD_TUNINGS)
# "both" is the paper's oracle next to the clean-free blind tuning.
_COMBINATIONS = {"both": ("oracle", "blind"), "oracle+blind-sigma": ("oracle", "blind-sigma")}
#: every value ``--tuning`` takes alone; a comma-separated list of them works too
TUNING_CHOICES = (*TUNING_KINDS, *_COMBINATIONS)


def parse_tunings(tuning: str) -> tuple[str, ...]:
    """The tunings of a ``--tuning`` value: one kind, a comma-separated list, or a combination.

    >>> parse_tunings("blind-psd,oracle-psd,both")
    ('blind-psd', 'oracle-psd', 'oracle', 'blind')
    """
    kinds: list[str] = []
    for part in (p.strip() for p in str(tuning).split(",")):
        if part not in TUNING_CHOICES:
            raise LowdoseInputError(
                f"unknown tuning {part!r}; choose from {', '.join(TUNING_CHOICES)} "
                "(comma-separated for several)"
            )
        kinds += _COMBINATIONS.get(part, (part,))
    return tuple(dict.fromkeys(kinds))
