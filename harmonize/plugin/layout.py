"""YAML-only datasets: a regular layout described by globs, templates and id patterns.

Used for descriptors that carry a ``layout`` section, e.g.::

    layout:
      - {images: "imagesTr/*.nii.gz", label: "labelsTr/{name}", split: train}
      - {images: "{case:BDMAP_*}/ct.nii.gz", structures: "{parent}/segmentations/{structure}.nii.gz"}
      - images: "{case}/{case}-t1n.nii.gz"
        channel_files: {T1: "{parent}/{case}-t1n.nii.gz", T2: "{parent}/{case}-t2w.nii.gz"}
        label: "{parent}/{case}-seg.nii.gz"
      - {images: "PETCT_{patient}/{study}-{num}/CT.nii.gz",   # id from two parts
         case_template: "{patient}_{num}", label: "masks/{case}.nii.gz"}
    case_id: '^(?P<id>case_\\d{4})'        # on the {case} text or the file name
    patient_id: '^(?P<id>.+)$'             # on the case id; default: the case id

Every key, placeholder and default is documented in the descriptor's JSON Schema
(:data:`~harmonize.plugin.descriptor_schema.LAYOUT_GROUP`, ``registry/schema/``); loading checks
it and :mod:`harmonize.plugin.layout_checks`, so patterns arrive here valid. Paths: image
patterns and splits in :mod:`~harmonize.plugin.layout_paths` and
:mod:`~harmonize.plugin.layout_splits`, one file per structure in
:mod:`~harmonize.plugin.layout_structures`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from harmonize.errors import DiscoveryError, LabelError
from harmonize.gate import confine_template
from harmonize.plugin.case import Case, Skipped
from harmonize.plugin.dataset import DatasetPlugin, is_hidden, strip_nifti_suffix
from harmonize.plugin.descriptor import Descriptor, LayoutGroup
from harmonize.plugin.layout_paths import (
    PathPattern,
    any_glob,
    compile_pattern,
    fill,
    pattern_constraints,
)
from harmonize.plugin.layout_raters import rater_files, read_raters
from harmonize.plugin.layout_roots import MAIN, resolve_roots
from harmonize.plugin.layout_splits import OfficialSplits, official_splits
from harmonize.plugin.layout_structures import read_structures, structure_files
from harmonize.plugin.layout_values import read_encoded_label
from harmonize.read.volume import Volume


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
        """Every image the groups' patterns match, in group order (see the module doc); a case
        id found for two images is a :class:`DiscoveryError` naming both files, unless the later
        group says ``duplicates: skip`` (then the earlier one wins and the later is skipped)."""
        root = self.check_root(root)
        desc = self.descriptor
        splits = official_splits(desc, root)
        roots = resolve_roots(desc, root)
        matched = 0
        claimed: set[Path] = set()
        first_file: dict[str, Path] = {}
        first_group: dict[str, int] = {}
        for number, group in enumerate(desc.layout):
            pattern = compile_pattern(group.images)
            base = roots[group.images_root or MAIN]
            for image in sorted(base.glob(pattern.glob)):
                matched += 1
                if is_hidden(image):
                    yield Skipped(image, "hidden or AppleDouble file, not data")
                    continue
                where = (base, roots[group.label_root or MAIN])
                for item in self._case(where, group, pattern, image, splits, claimed):
                    if isinstance(item, Case):
                        if (group.duplicates == "skip"
                                and first_group.get(item.case_id, number) < number):
                            yield Skipped(image, f"case {item.case_id!r} was already found at "
                                          f"{first_file[item.case_id]} (an earlier layout "
                                          "group wins)", case_id=item.case_id,
                                          hint="nothing to do when the earlier group holds the "
                                          "corrected copy")
                            continue
                        if item.case_id in first_file:
                            raise DiscoveryError(
                                f"case id {item.case_id!r} is found twice: "
                                f"{first_file[item.case_id]} and {image}",
                                dataset=desc.id, file=desc.source_file,
                                hint="take the case id from the part of the path that differs: "
                                "a {case} placeholder in images (e.g. '{case}/ct.nii.gz') or a "
                                "case_id pattern",
                            )
                        first_file[item.case_id] = image
                        first_group[item.case_id] = number
                    yield item
        if matched:
            yield from orphan_labels(roots, desc.layout, claimed, case_id_regex=desc.case_id)
        if matched == 0:
            globs = ", ".join(g.images for g in desc.layout)
            raise DiscoveryError(
                f"no images match {globs} under the root",
                dataset=desc.id,
                file=root,
                hint=f"point --root at the extracted release ({desc.expected_root or 'see README'})",
            )

    def _case(self, roots: tuple[Path, Path], group: LayoutGroup, pattern: PathPattern,
              image: Path, splits: OfficialSplits, claimed: set[Path]
              ) -> Iterator[Case | Skipped]:
        """The case of one matched image (or why not), preceded by files it reports; ``roots``
        are the group's image root and label root."""
        desc = self.descriptor
        root, label_root = roots
        fields = pattern.match(image.relative_to(root).as_posix())
        if fields is None:
            yield Skipped(image, f"path does not fit the images pattern {group.images!r}")
            return
        ids = self._ids(image, fields if group.case_template is None else
                        {**fields, "case": fill(group.case_template, fields)})
        if isinstance(ids, Skipped):
            yield ids
            return
        case_id, patient_id = ids
        values = {**fields, "case": case_id, "patient": patient_id, "name": image.name,
                  "parent": image.parent.relative_to(root).as_posix()}

        def path_of(template: str, base: Path = label_root) -> Path:
            return confine_template(fill(template, values), base, template=template,
                                    dataset=desc.id, file=image)

        if case_id in desc.exclude_cases:  # its label is claimed: not a stray label
            claimed.update(path_of(t) for t in (group.label,) if t and group.raters is None)
            yield Skipped(image, f"excluded by the descriptor: {desc.exclude_cases[case_id]}",
                          case_id=case_id, hint="exclude_cases in the dataset's descriptor")
            return
        images: tuple[Path, ...] = (image,)
        if group.channel_files:
            images = tuple(path_of(t, root) for t in group.channel_files.values())
            missing = [p for p in images if not p.exists()]
            if missing:
                yield Skipped(image, "no channel file " + ", ".join(
                    p.relative_to(root).as_posix() for p in missing), case_id=case_id,
                    hint="re-extract the release; a case needs every channel")
                return
        label: Path | None = None
        annotated = None
        if group.raters is not None and group.label is not None:
            folder_t, _, file_t = group.label.rpartition("/")
            raters = rater_files(path_of(folder_t or "."), file_t, values)
            claimed.update(raters.values())
            if isinstance(group.raters, Mapping):
                label = raters.get(group.raters["choose"])
            elif raters:
                label = path_of(folder_t or ".")
        elif group.label is not None:
            label = path_of(group.label)
            claimed.add(label)
            if not label.is_file():
                label = None
        elif group.structures is not None:
            folder_t, _, file_t = group.structures.rpartition("/")
            folder = path_of(folder_t or ".")
            found, reported = structure_files(desc, folder, file_t, values, exclude=images)
            claimed.update(path for paths in found.values() for path in paths)
            claimed.update(s.path for s in reported)
            yield from reported
            if found:
                label, annotated = folder, tuple(found)
        if label is None and (group.label or group.structures) and group.label_required:
            missing_what = (f"no label file {fill(group.label, values)}" if group.label else
                            f"no structure file {fill(group.structures or '', values)}")
            yield Skipped(image, missing_what, case_id=case_id,
                          hint="re-extract the release; a case without its label is not used")
            return
        try:
            split = splits.of(case_id, patient_id, fields.get("split"), group.split)
        except ValueError:
            yield Skipped(image, f"folder text {fields.get('split')!r} names no split",
                          case_id=case_id, hint="map it in the descriptor's split_names")
            return
        yield Case(
            case_id=case_id,
            patient_id=patient_id,
            images=images,
            label=label,
            official_split=split,
            channel_names=tuple(group.channel_files) if group.channel_files else desc.channels,
            annotated=annotated,
            rescale=group.rescale,
            metadata={"session": fields["session"]} if "session" in fields else {},
        )

    def _ids(self, image: Path, fields: dict[str, str]) -> tuple[str, str] | Skipped:
        """(case id, patient id) of an image: ``{case}``/``{patient}`` text, refined by the
        ``case_id``/``patient_id`` patterns, else the file name without its suffix."""
        desc = self.descriptor
        source = fields.get("case", image.name)
        if desc.case_id:
            found = re.search(desc.case_id, source)
            if found is None:
                what = "{case} text" if "case" in fields else "file name"
                return Skipped(image, f"{what} does not match the case_id pattern "
                               f"{desc.case_id!r}", hint="check the file belongs to this dataset")
            case_id = found.group("id")
        else:
            case_id = fields.get("case") or strip_nifti_suffix(image.name)
        if "patient" in fields:
            return case_id, fields["patient"]
        if desc.patient_id:
            found = re.search(desc.patient_id, case_id)
            if found is None:
                return Skipped(image, f"case id {case_id!r} does not match patient_id pattern",
                               case_id=case_id)
            return case_id, found.group("id")
        return case_id, case_id

    def read_label(self, case: Case) -> Volume | None:
        """The combined structure masks when ``case.label`` is a structure folder, the decoded
        label for ``value_ranges``/``label_encoding``, else ``None`` (the core reads it)."""
        if case.label is None:
            return None
        if not case.label.is_dir():
            return read_encoded_label(self.descriptor, case.label)
        problem: LabelError | None = None
        for group in self.descriptor.layout:
            try:
                if group.structures:
                    file_t = group.structures.rpartition("/")[2]
                    return read_structures(self.descriptor, case, file_t)
                if group.label and isinstance(group.raters, str):
                    file_t = group.label.rpartition("/")[2]
                    return read_raters(self.descriptor, case, file_t, group.raters)
            except LabelError as exc:
                if problem is None:
                    problem = exc
        if problem is not None:
            raise problem
        return None


def label_glob(template: str) -> str:
    """The glob matching every file a label template can name (placeholders become ``*``)."""
    return any_glob(template)


def orphan_labels(
    roots: Mapping[str, Path], groups: tuple[LayoutGroup, ...], claimed: set[Path],
    case_id_regex: str | None = None,
) -> Iterator[Skipped]:
    """A :class:`Skipped` for every label (or structure) file no image claimed (its image is
    missing), so a partial download is reported instead of silently ignored, and every hidden or
    AppleDouble file. Only files the group's images pattern could pair are strays: its
    placeholder constraints apply to the label template (``{case:topcow_ct_*}`` leaves the MR
    labels of a shared folder alone). ``roots``
    maps root names to folders (``""``: the dataset root)."""
    seen: set[Path] = set()
    for group in groups:
        template = group.label or group.structures
        if template is None:
            continue
        folder = roots[group.label_root or MAIN]
        constraints = pattern_constraints(group.images, case_is_placeholder=(
            group.case_template is None and case_id_regex is None))
        pairable = set(folder.glob(any_glob(template, constraints))) if constraints else None
        for label in sorted(folder.glob(any_glob(template))):
            if label in claimed or label in seen or not label.is_file():
                continue
            seen.add(label)
            if is_hidden(label):
                yield Skipped(label, "hidden or AppleDouble file, not data")
                continue
            if pairable is not None and label not in pairable:
                continue  # another group's or modality's file (outside the images' constraints)
            yield Skipped(
                label,
                "label file without a matching image",
                hint="re-extract the images (e.g. an image archive is missing) or remove the stray label",
            )
