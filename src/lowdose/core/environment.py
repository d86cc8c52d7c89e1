"""The machine and software a result was computed with: one capture for reports and manifests.

:func:`capture_environment` records CPU, GPU, thread count and library versions once;
``experiment.json`` (``environment``, via :meth:`Environment.report_fields`) and a training run's
``manifest.json`` (via :meth:`Environment.manifest_fields`) write the keys they always wrote.
torch and lightning are imported inside the capture, so importing this module stays light.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from lowdose import __version__


@dataclass(frozen=True)
class Environment:
    """CPU/GPU and versions of one process.

    Attributes
    ----------
    cpu : str
        CPU model name (``/proc/cpuinfo``; the platform's processor or machine elsewhere).
    cpu_count : int or None
        Logical CPUs of the machine (``os.cpu_count``).
    torch_threads : int
        torch's intra-op threads at capture time.
    gpu : str or None
        Name of CUDA device 0, None without CUDA.
    python, torch, lightning, lowdose : str
        Versions.
    platform : str
        ``platform.platform()``.
    git_revision : str or None
        Commit of the git checkout holding lowdose; None for an installed wheel.
    """

    cpu: str
    cpu_count: int | None
    torch_threads: int
    gpu: str | None
    python: str
    torch: str
    lightning: str
    lowdose: str
    platform: str
    git_revision: str | None

    def report_fields(self) -> dict:
        """The ``environment`` block of ``experiment.json`` (its keys are unchanged)."""
        return {
            "cpu": self.cpu,
            "cpu_count": self.cpu_count,
            "torch_threads": self.torch_threads,
            "gpu": self.gpu,
            "python": self.python,
            "torch": self.torch,
            "lightning": self.lightning,
            "lowdose": self.lowdose,
            "platform": self.platform,
        }

    def manifest_fields(self) -> dict:
        """The version keys of a training run's ``manifest.json``."""
        return {
            "lowdose_version": self.lowdose,
            "git_revision": self.git_revision,
            "torch_version": self.torch,
            "lightning_version": self.lightning,
            "python_version": self.python,
        }


def capture_environment() -> Environment:
    """Capture the current process's :class:`Environment` (imports torch and lightning)."""
    import lightning
    import torch

    return Environment(
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        python=platform.python_version(),
        torch=torch.__version__,
        lightning=lightning.__version__,
        lowdose=__version__,
        platform=platform.platform(),
        git_revision=git_revision(),
    )


def cpu_name() -> str:
    """CPU model name: ``platform.processor()`` is empty on Linux, ``/proc/cpuinfo`` names it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_revision(start: Path | None = None) -> str | None:
    """Commit hash of the git checkout holding ``start`` (default: lowdose's own source).

    Read from ``.git`` (no git process); None when no checkout holds it (an installed wheel).
    """
    folder = (start or Path(__file__)).resolve()
    for parent in [folder, *folder.parents]:
        git_dir = parent / ".git"
        if git_dir.is_dir():
            return _read_head(git_dir)
    return None


def _read_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        ref_file = git_dir / ref
        if ref_file.is_file():
            return ref_file.read_text().strip()
        packed = git_dir / "packed-refs"
        for line in packed.read_text().splitlines() if packed.is_file() else []:
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None
