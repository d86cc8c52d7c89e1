"""Archive-scale ``lowdose denoise``: slices per second and peak memory for 1, 10 and 100 series.

An archive of ``--series`` copies of one real DICOM series (default
``../shared/data/ct/pancreas-ct-philips``, 134 slices at 512^2) is made of symbolic links in a
temporary folder (nothing is copied, nothing written into ``../shared``): ``ARCHIVE/series_k/``
holds the first ``--slices`` slices of the source series under new file names, plus the source's
licence files beside them. Each point runs ``lowdose denoise ARCHIVE --model MODEL --out OUT``
in a fresh process and reports:

* wall time and slices per second (the whole command: start-up, index, read, denoise, write);
* peak resident memory of the process (``ru_maxrss`` of the child, MiB);
* the number of output files and output series (distinct SeriesInstanceUIDs of a sample).

The target: peak memory flat from 1 to 100 series, because ``denoise`` holds one
series at a time. Copies of one series share its SeriesInstanceUID; each copy is its own folder,
so each is its own unit (and gets its own output series UID: the folder is part of the source
identity only when the UID is empty, so the copies here share an output UID — real archives do
not hold copies). Mark the run idle or loaded: nothing else should compute while it runs.

Run from the repository root::

    .venv/bin/python benchmarks/denoise_archive.py --series 1 10 100 --slices 4
    .venv/bin/python benchmarks/denoise_archive.py --series 1 --slices 134
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path("../shared/data/ct/pancreas-ct-philips")
LOWDOSE = str(Path(sys.executable).parent / "lowdose")
_MEASURE = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def make_archive(root: Path, source: Path, n_series: int, n_slices: int) -> int:
    """Link ``n_series`` copies of the first ``n_slices`` DICOM files of ``source``; slices."""
    slices = sorted(source.glob("*.dcm"))[:n_slices]
    extras = [p for p in source.iterdir() if p.is_file() and p.suffix.lower() != ".dcm"]
    for k in range(n_series):
        folder = root / f"series_{k:04d}"
        folder.mkdir(parents=True)
        for i, path in enumerate(slices):
            (folder / f"im_{i:04d}.dcm").symlink_to(path.resolve())
        for path in extras:
            (folder / path.name).symlink_to(path.resolve())
    return n_series * len(slices)


def run_point(n_series: int, n_slices: int, model: str, source: Path, extra: list[str]) -> dict:
    """One archive size: make it, denoise it in a fresh process, measure, clean up."""
    work = Path(tempfile.mkdtemp(prefix="lowdose-archive-"))
    try:
        total = make_archive(work / "archive", source, n_series, n_slices)
        command = [
            LOWDOSE,
            "denoise",
            str(work / "archive"),
            "--model",
            model,
            "--out",
            str(work / "out"),
            "--device",
            "cpu",
            *extra,
        ]
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - start
        peak_kib, code = (int(v) for v in result.stdout.split())
        if code != 0:
            raise SystemExit(f"lowdose denoise failed with exit code {code}")
        outputs = sorted((work / "out").rglob("*.dcm"))
        return {
            "series": n_series,
            "slices": total,
            "wall_s": wall,
            "slices_per_s": total / wall,
            "peak_rss_mib": peak_kib / 1024,
            "outputs": len(outputs),
            "output_series": len(_series_uids(outputs[:: max(1, len(outputs) // 50)])),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _series_uids(paths: list[Path]) -> set[str]:
    import pydicom

    return {str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID) for p in paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--slices", type=int, default=134, help="slices per series (<= 134)")
    parser.add_argument("--model", default="builtin:ct-sinogram")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"{args.source}: no such series folder; pass --source DICOM_FOLDER")
    extra = [] if args.threads is None else ["--threads", str(args.threads)]
    print(
        f"lowdose denoise {args.model}, {args.slices} slices of {args.source.name} per series, "
        f"{os.cpu_count()} CPUs"
    )
    print("| series | slices | wall s | slices/s | peak RSS MiB | output files | series seen |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n_series in args.series:
        row = run_point(n_series, args.slices, args.model, args.source, extra)
        print(
            f"| {row['series']} | {row['slices']} | {row['wall_s']:.1f} | "
            f"{row['slices_per_s']:.2f} | {row['peak_rss_mib']:.0f} | {row['outputs']} | "
            f"{row['output_series']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
