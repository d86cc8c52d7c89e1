"""The HDF5 dataset file with typed attributes, its writer, splits, scaling and the results schema.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary
from lowdose.data.dataset import SplitArrays, load_split, read_attrs, read_info, read_scale
from lowdose.data.paired import paired_difference, paired_table
from lowdose.data.results import summarize
from lowdose.data.scaling import hu_to_scaled, scaled_to_hu
from lowdose.data.splits import split_by_object
from lowdose.data.writer import dataset_writer, write_dataset

__all__ = [
    "DatasetAttrs",
    "DatasetSummary",
    "SplitArrays",
    "dataset_writer",
    "hu_to_scaled",
    "load_split",
    "paired_difference",
    "paired_table",
    "read_attrs",
    "read_info",
    "read_scale",
    "scaled_to_hu",
    "split_by_object",
    "summarize",
    "write_dataset",
]
