"""Datasets: class folders, splits, robust image decoding, audit, demo data."""

from ftedge.data.audit import DatasetAudit, audit_dataset
from ftedge.data.demo import write_demo_data
from ftedge.data.folder import DatasetLayout, Sample, discover_dataset
from ftedge.data.images import IMAGE_EXTENSIONS, load_image

__all__ = [
    "DatasetAudit",
    "DatasetLayout",
    "IMAGE_EXTENSIONS",
    "Sample",
    "audit_dataset",
    "discover_dataset",
    "load_image",
    "write_demo_data",
]
