"""The public plugin API: everything a dataset plugin may import, and nothing else.

A plugin (built-in or third-party) imports only this module::

    from harmonize.plugin import Case, DatasetPlugin, DiscoveryError, Skipped, hookimpl

The rest of ``harmonize`` is the core's and may change between releases; names exported here keep
working (or warn first). Submodules: :mod:`~harmonize.plugin.hookspecs` (the hooks),
:mod:`~harmonize.plugin.dataset`, :mod:`~harmonize.plugin.descriptor`,
:mod:`~harmonize.plugin.layout` (YAML-only datasets), :mod:`~harmonize.plugin.catalog` (plugin
manager, built-ins, entry points), :mod:`~harmonize.plugin.discovery`,
:mod:`~harmonize.plugin.structures` (vocabulary names added by plugins).
"""

from harmonize.errors import (
    DescriptorError,
    DiscoveryError,
    HarmonizeError,
    LabelError,
    PluginError,
    ReadError,
)
from harmonize.labels.codes import Code, StructureCodes
from harmonize.labels.overlap import combine_structures, structure_masks
from harmonize.labels.vocabulary import Structure, normalize_name
from harmonize.plugin.case import SPLITS, Case, Skipped, check_identifier
from harmonize.plugin.dataset import DatasetPlugin, is_hidden, strip_nifti_suffix, walk_files
from harmonize.plugin.descriptor import Descriptor, load_descriptor, parse_descriptor
from harmonize.plugin.hookspecs import hookimpl
from harmonize.plugin.layout import LayoutDataset
from harmonize.read.dicom_scan import read_header as read_dicom_header
from harmonize.read.dicom_volume import regular_series
from harmonize.read.matlab import read_mat_label
from harmonize.read.npy import read_npy
from harmonize.read.rtstruct import is_rtstruct, read_structure_set
from harmonize.read.rtstruct_label import rtstruct_rois
from harmonize.read.volume import Volume, read_header, read_volume, sitk_affine
from harmonize.yamlio import load_yaml

__all__ = [
    # registration
    "hookimpl",
    "DatasetPlugin",
    "LayoutDataset",
    "Structure",
    "StructureCodes",
    "Code",
    # what discovery yields
    "Case",
    "Skipped",
    "SPLITS",
    "check_identifier",
    # errors a plugin raises
    "HarmonizeError",
    "PluginError",
    "DiscoveryError",
    "ReadError",
    "LabelError",
    "DescriptorError",
    # descriptors
    "Descriptor",
    "load_descriptor",
    "parse_descriptor",
    "load_yaml",
    "normalize_name",
    # files and volumes (for read_image/read_label overrides)
    "walk_files",
    "is_hidden",
    "strip_nifti_suffix",
    "Volume",
    "read_volume",
    "read_header",
    "read_mat_label",
    "read_npy",
    # structure masks that may overlap -> one label map with its own class table
    "combine_structures",
    "structure_masks",
    # DICOM series (for plugins that paste 2D labels onto a series): the core's series model
    "regular_series",
    "read_dicom_header",
    "sitk_affine",
    # RT Structure Sets (labels the core reads; plugins find them and their series)
    "is_rtstruct",
    "read_structure_set",
    "rtstruct_rois",
]
