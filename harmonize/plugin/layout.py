"""YAML-only datasets: a regular layout described by globs, a label template and id regexes.

Used for descriptors that carry a ``layout`` section, e.g.::

    layout:
      - {images: "imagesTr/*.nii.gz", label: "labelsTr/{name}", split: train}
      - {images: "imagesTs/*.nii.gz", label: "labelsTs/{name}", split: test}
    case_id: '^(?P<id>case_\\d{4})'        # on the image file name; default: name without suffix
    patient_id: '^(?P<id>.+)$'             # on the case id; default: the case id

Every key, placeholder and default is documented in the descriptor's JSON Schema
(:data:`~harmonize.plugin.descriptor_schema.LAYOUT_GROUP`, ``registry/schema/``), which loading
checks; the patterns arrive here valid (confined to the root, known placeholders, compiled regexes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmonize.errors import DiscoveryError
from harmonize.gate import confine_template
from harmonize.plugin.case import Case, Skipped
from harmonize.plugin.dataset import DatasetPlugin, is_hidden, strip_nifti_suffix
from harmonize.plugin.descriptor import Descriptor, LayoutGroup


class LayoutDataset(DatasetPlugin):
    """A dataset plugin driven entirely by its descriptor's ``layout`` section."""

    def __init__(self, descriptor: Descriptor) -> None:
        if not descriptor.layout:
            raise DiscoveryError(
                "a YAML-only dataset needs a 'layout' section",
                dataset=descriptor.id,
                file=descriptor.source_file,
                hint="add layout: [{images: <glob>, label: <template>}] to the descriptor",
            )
        super().__init__(descriptor)

    @property
    def dataset_id(self) -> str:
        return self.descriptor.id

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        desc = self.descriptor
        case_re = re.compile(desc.case_id) if desc.case_id else None
        patient_re = re.compile(desc.patient_id) if desc.patient_id else None
        matched = 0
        claimed: set[Path] = set()
        for group in desc.layout:
            for image in sorted(root.glob(group.images)):
                matched += 1
                if is_hidden(image):
                    yield Skipped(image, "hidden or AppleDouble file, not data")
                    continue
                name = image.name
                if case_re is not None:
                    found = case_re.search(name)
                    if found is None:
                        yield Skipped(
                            image,
                            f"file name does not match the case_id pattern {desc.case_id!r}",
                            hint="check the file belongs to this dataset",
                        )
                        continue
                    case_id = found.group("id")
                else:
                    case_id = strip_nifti_suffix(name)
                patient_id = case_id
                if patient_re is not None:
                    found = patient_re.search(case_id)
                    if found is None:
                        yield Skipped(image, f"case id {case_id!r} does not match patient_id pattern",
                                      case_id=case_id)
                        continue
                    patient_id = found.group("id")
                label = None
                if group.label is not None:
                    parent = image.parent.relative_to(root).as_posix()
                    label = confine_template(
                        group.label.format(case=case_id, name=name, parent=parent), root,
                        template=group.label, dataset=desc.id, file=image)
                    claimed.add(label)
                    if not label.is_file():
                        if group.label_required:
                            yield Skipped(
                                image,
                                f"no label file {label.relative_to(root).as_posix()}",
                                case_id=case_id,
                                hint="re-extract the release; a case without its label is not used",
                            )
                            continue
                        label = None
                yield Case(
                    case_id=case_id,
                    patient_id=patient_id,
                    images=(image,),
                    label=label,
                    official_split=group.split,
                    channel_names=desc.channels,
                )
        if matched:
            yield from orphan_labels(root, desc.layout, claimed)
        if matched == 0:
            globs = ", ".join(g.images for g in desc.layout)
            raise DiscoveryError(
                f"no images match {globs} under the root",
                dataset=desc.id,
                file=root,
                hint=f"point --root at the extracted release ({desc.expected_root or 'see README'})",
            )


def label_glob(template: str) -> str:
    """The glob matching every file a label template can name (placeholders become ``*``)."""
    return re.sub(r"\{(case|name|parent)\}", "*", template)


def orphan_labels(
    root: Path, groups: tuple[LayoutGroup, ...], claimed: set[Path]
) -> Iterator[Skipped]:
    """A :class:`Skipped` for every label file no image claimed (its image is missing), so a
    partial download is reported instead of silently ignored."""
    seen: set[Path] = set()
    for group in groups:
        if group.label is None:
            continue
        for label in sorted(root.glob(label_glob(group.label))):
            if label in claimed or label in seen or not label.is_file():
                continue
            seen.add(label)
            if is_hidden(label):
                yield Skipped(label, "hidden or AppleDouble file, not data")
                continue
            yield Skipped(
                label,
                "label file without a matching image",
                hint="re-extract the images (e.g. an image archive is missing) or remove the stray label",
            )
