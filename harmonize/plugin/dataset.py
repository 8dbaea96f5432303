"""The code half of a dataset plugin: :class:`DatasetPlugin`.

A subclass knows only what is special about its dataset: where the cases are in the released layout
(:meth:`DatasetPlugin.discover`), and, when a file is not a plain volume, how to read it
(:meth:`read_label`, :meth:`read_image`). Label meaning lives in its descriptor (YAML).
Everything else (orientation, spacing, intensity, label merging, writing, manifests, splits) is the
core's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harmonize.errors import DiscoveryError, PluginError
from harmonize.plugin.case import Case, Skipped
from harmonize.plugin.descriptor import Descriptor, load_descriptor, parse_descriptor

if TYPE_CHECKING:
    from harmonize.read.volume import Volume


class DatasetPlugin:
    """Base class of every dataset plugin.

    Set ``id`` (lowercase, unique). The descriptor is loaded from the bundled
    ``registry/datasets/<id>.yaml`` unless one is passed to the constructor or ``descriptor_file``
    points at another YAML file (a third-party package ships its own).
    """

    id: ClassVar[str] = ""
    descriptor_file: ClassVar[Path | None] = None
    #: Take part in ``harmonize demo`` (when the plugin can fabricate its layout).
    demo: ClassVar[bool] = True

    def __init__(self, descriptor: Descriptor | dict | None = None) -> None:
        if isinstance(descriptor, dict):
            descriptor = parse_descriptor(descriptor)
        if descriptor is not None:
            self.__dict__["descriptor"] = self._check_id(descriptor)
        #: Where the plugin came from ("built-in" or "<distribution> <version>"); set by the registry.
        self.source = "unregistered"

    @property
    def dataset_id(self) -> str:
        return self.id or self.descriptor.id

    @cached_property
    def descriptor(self) -> Descriptor:
        """The dataset's descriptor (validated on first use)."""
        if self.descriptor_file is not None:
            return self._check_id(load_descriptor(Path(self.descriptor_file)))
        resource = resources.files("harmonize.registry").joinpath("datasets", f"{self.id}.yaml")
        if not resource.is_file():
            raise PluginError(
                f"no descriptor registry/datasets/{self.id}.yaml for plugin {type(self).__name__}",
                dataset=self.id,
                hint="pass a descriptor to the constructor or set descriptor_file",
            )
        with resources.as_file(resource) as path:
            return self._check_id(load_descriptor(path))

    def _check_id(self, descriptor: Descriptor) -> Descriptor:
        """The descriptor, if its ``id`` is the plugin's (records carry the descriptor's id, the
        catalogue and manifest file names the plugin's: they must agree)."""
        if self.id and descriptor.id != self.id:
            raise PluginError(
                f"plugin {type(self).__name__} has id {self.id!r} but its descriptor says "
                f"{descriptor.id!r}",
                dataset=self.id, file=descriptor.source_file,
                hint="use one id in the plugin class and its descriptor",
            )
        return descriptor

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        """Yield a :class:`Case` for every case under ``root`` in the released layout, and a
        :class:`Skipped` for everything else seen there (never drop anything silently).

        Raise :class:`~harmonize.errors.DiscoveryError` when ``root`` is not this dataset at all.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement discover()")

    @property
    def label_names(self) -> list[str]:
        """Canonical class names this dataset's records can carry (listed by ``harmonize
        plugins``): the descriptor's classes, unless the plugin builds per-case label maps
        (:attr:`Case.labels`) and overrides this with every name they can use."""
        return list(self.descriptor.classes)

    def read_image(self, case: Case) -> Volume | None:
        """Read the case's image when it is not a plain NIfTI/NRRD/MHA file or DICOM folder.

        Return ``None`` (the default) to let the core read ``case.images``.
        """
        return None

    @property
    def reads_images(self) -> bool:
        """True when the plugin overrides :meth:`read_image` (its files are not plain volumes,
        so even the image's grid must come from the plugin)."""
        return type(self).read_image is not DatasetPlugin.read_image

    def read_label(self, case: Case) -> Volume | None:
        """Read the case's label map when it is not a plain volume (PNG stacks, one file per
        structure, instance masks ...). Return ``None`` (the default) to let the core read
        ``case.label``. A case is labelled when ``case.label`` is set (a file, or a folder this
        method reads); return ``None`` for ``label=None``: the case is unlabelled.

        One mask per structure, possibly overlapping: return
        ``combine_structures(names, masks, affine)`` (:mod:`harmonize.labels.overlap`); the
        volume's own class table then replaces the descriptor's classes for this case, and a
        structure without a mask is not annotated in it.
        """
        return None

    def instances(self, case: Case) -> Mapping[int, Mapping[str, Any]] | None:
        """The case's *instance* label values (one object each, e.g. one lesion per value) with
        JSON-serialisable attributes per value, or ``None`` (the default) for no instances.

        When given, the manifest measures each value against the image
        (:func:`harmonize.manifest.lesions.lesion_features`: axes, volume, mean intensity) and writes one
        entry per value, the attributes plus the features, to the record's ``instances`` field.
        Do no I/O here: return what discovery stored on the case.
        """
        return None

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        """Write a tiny copy of the dataset in its real layout under ``root``; return the path to
        pass to :meth:`discover`. Plugins that provide one take part in ``harmonize demo``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no fabricator")

    @property
    def can_fabricate(self) -> bool:
        return type(self).fabricate is not DatasetPlugin.fabricate

    # helpers for subclasses -------------------------------------------------------------

    def check_root(self, root: Path) -> Path:
        """Return ``root`` as a Path, or raise a clear error if it is missing or not a folder."""
        root = Path(root)
        if not root.exists():
            raise DiscoveryError(
                "dataset root does not exist",
                dataset=self.dataset_id,
                file=root,
                hint=f"pass the folder you extracted the release into (expected: "
                f"{self.descriptor.expected_root or 'see harmonize plugins'})",
            )
        if not root.is_dir():
            raise DiscoveryError(
                "dataset root is not a folder", dataset=self.dataset_id, file=root,
                hint="pass the folder that holds the dataset, not a file in it",
            )
        return root

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.dataset_id!r} source={self.source!r}>"


def is_hidden(path: Path) -> bool:
    """macOS AppleDouble (``._x``), dot files and ``_``-prefixed files are never data."""
    return path.name.startswith((".", "_"))


def walk_files(root: Path) -> Iterator[Path | Skipped]:
    """Every file below ``root`` in sorted order; hidden files and folders become :class:`Skipped`."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for name in sorted(dirs):
            if is_hidden(Path(name)):
                yield Skipped(here / name, "hidden folder, not searched")
        dirs[:] = sorted(d for d in dirs if not is_hidden(Path(d)))
        for name in sorted(files):
            path = here / name
            yield Skipped(path, "hidden or AppleDouble file, not data") if is_hidden(path) else path


def strip_nifti_suffix(name: str) -> str:
    """``case.nii.gz`` -> ``case`` (``Path.stem`` would leave ``case.nii``)."""
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
