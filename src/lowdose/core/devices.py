"""The one home of ``device="auto"``: the torch device a run gets when the user names none.

torch is imported inside :func:`resolve_device` only, so that this module stays as light as the
rest of ``core``.
"""

from __future__ import annotations

AUTO = "auto"


def resolve_device(name: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; any other name unchanged.

    Parameters
    ----------
    name : str
        ``"auto"``, or a torch device name (``"cpu"``, ``"cuda"``, ``"cuda:1"``); a name other
        than ``"auto"`` is returned as given, to be checked where it is used
        (:func:`lowdose.inference.predict.checked_device`).

    Returns
    -------
    str
        A torch device name.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("auto") in ("cpu", "cuda")
    True
    """
    if name.strip().lower() != AUTO:
        return name
    import torch  # heavy: only when a device must be chosen

    return "cuda" if torch.cuda.is_available() else "cpu"
