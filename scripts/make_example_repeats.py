"""Make example "repeated acquisitions" from clean CT slices: N DICOM series with independent noise.

Reads DICOM slices (default: the shared TCGA-LUAD slices), adds independent Gaussian noise of a
known standard deviation in HU to each realisation, and writes every realisation as its own DICOM
series (new SeriesInstanceUID, same patient and geometry tags) into OUT/rep1, OUT/rep2, ... From
then on the clean slices are treated as if they did not exist: see docs/own-data.md.

Stored as signed int16 (PixelRepresentation 1) so that noise below -1024 HU is kept rather than
clipped by the unsigned type of the source files. Padding outside the field of view (below
-1500 HU, e.g. -2048 or -3024) stays noise-free, as a scanner writes it. Slices that share a
patient and position with another slice (duplicates in the TCGA sample) are left out, so the
series can be paired by position.

    .venv/bin/python scripts/make_example_repeats.py --out data/repeats --sigma-hu 40 --seed 0
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

from lowdose.io.dicom_write import write_dicom_like
from lowdose.io.images import read_ct
from lowdose.owndata.repeats import PADDING_BELOW_HU

DEFAULT_SOURCE = Path(__file__).resolve().parents[1] / ".." / "shared/data/ct/tcga-luad"


def unique_slices(source: Path, limit: int | None = None) -> tuple[np.ndarray, list]:
    """HU slices (I, 512, 512) float32 and their headers, one per (patient, position)."""
    stack = read_ct(source)
    seen, keep = set(), []
    for row, header in enumerate(stack.headers):
        position = tuple(round(float(v), 2) for v in header.ImagePositionPatient)
        key = (str(header.PatientID), position)
        if key not in seen:
            seen.add(key)
            keep.append(row)
    keep = keep[:limit] if limit else keep
    return stack.hu[keep], [stack.headers[row] for row in keep]


def make_repeats(
    hu: np.ndarray, headers: list, out: Path, *, sigma_hu: float, n_realisations: int, seed: int
) -> list[Path]:
    """Write ``n_realisations`` noisy DICOM series of ``hu`` into ``out/rep1``, ``out/rep2``, ..."""
    rng = np.random.default_rng(seed)
    templates = [copy.deepcopy(h) for h in headers]
    for template in templates:
        template.PixelRepresentation = 1  # signed: keep noise below the -1024 HU intercept
    folders = []
    for k in range(1, n_realisations + 1):
        noise = sigma_hu * rng.standard_normal(hu.shape)
        noisy = np.where(hu > PADDING_BELOW_HU, hu + noise, hu)
        folder = out / f"rep{k}"
        write_dicom_like(
            templates,
            noisy,
            folder,
            description_suffix=f" repeat {k}",
            derivation=f"example repeat {k}: Gaussian noise sigma {sigma_hu} HU, seed {seed}",
        )
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="DICOM folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for rep1, rep2, ...")
    parser.add_argument("--sigma-hu", type=float, default=40.0, help="noise sd in HU")
    parser.add_argument("--realisations", type=int, default=2)
    parser.add_argument("--slices", type=int, default=None, help="use only the first N slices")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    hu, headers = unique_slices(args.source, args.slices)
    folders = make_repeats(
        hu,
        headers,
        args.out,
        sigma_hu=args.sigma_hu,
        n_realisations=args.realisations,
        seed=args.seed,
    )
    print(
        f"{len(hu)} slices x {len(folders)} series, sigma {args.sigma_hu} HU "
        f"(variance {args.sigma_hu**2:.1f} HU^2) -> {', '.join(map(str, folders))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
