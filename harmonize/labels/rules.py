"""Turn a dataset descriptor into a record's canonical name -> mask values map.

Pure functions, no I/O: merges never rewrite a mask, they are sets of values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from harmonize.errors import LabelError
from harmonize.labels.vocabulary import Vocabulary
from harmonize.plugin.descriptor import Descriptor


def class_values(
    descriptor: Descriptor,
    vocabulary: Vocabulary,
    *,
    observed: Iterable[int] | None = None,
    annotated: Iterable[str] | None = None,
    case_labels: Mapping[str, Sequence[int]] | None = None,
    case: str | None = None,
    file: Path | None = None,
) -> dict[str, list[int]]:
    """Canonical name -> sorted label values for one case.

    ``annotated`` restricts the result to the classes labelled in this case (names as in the
    descriptor or their synonyms). ``observed`` are the values actually found in the mask; one that
    the descriptor does not declare is a :class:`LabelError` naming ``file``, because an undeclared
    value means the plugin or the data is not what we think it is.

    ``case_labels`` (from :attr:`Case.labels`) replaces the descriptor's classes for this case, for
    instance masks whose values mean different things per case; observed values are then checked
    against the values it uses.
    """
    source = file or descriptor.source_file
    classes = descriptor.classes if case_labels is None else case_labels
    class_file = descriptor.source_file if case_labels is None else source
    result: dict[str, list[int]] = {}
    for name, values in classes.items():
        canonical = vocabulary.resolve(name, dataset=descriptor.id, file=class_file)
        if canonical in result:
            raise LabelError(
                f"two classes resolve to the canonical name {canonical!r}",
                dataset=descriptor.id,
                case=case,
                file=class_file,
                hint="merge them into one class",
            )
        result[canonical] = sorted(int(v) for v in values)
    if annotated is not None:
        wanted = [vocabulary.resolve(n, dataset=descriptor.id, file=source) for n in annotated]
        missing = [n for n in wanted if n not in result]
        if missing:
            raise LabelError(
                f"annotated class(es) {missing} are not classes of the dataset",
                dataset=descriptor.id,
                case=case,
                file=source,
                hint=f"use names from the descriptor's classes: {sorted(result)}",
            )
        result = {n: v for n, v in result.items() if n in wanted}
    if observed is not None:
        declared = None if case_labels is None else {v for vs in case_labels.values() for v in vs}
        check_observed_values(descriptor, observed, case=case, file=file, declared=declared)
    return result


def check_observed_values(
    descriptor: Descriptor,
    observed: Iterable[int],
    *,
    case: str | None = None,
    file: Path | None = None,
    declared: Iterable[int] | None = None,
) -> None:
    """Raise :class:`LabelError` if a mask holds a value not declared (by the descriptor's
    ``values``, or by ``declared`` when given)."""
    declared = set(descriptor.values if declared is None else declared) | {0}
    unexpected = sorted(int(v) for v in set(observed) - declared)
    if unexpected:
        raise LabelError(
            f"mask holds label value(s) {unexpected} not declared for this dataset "
            f"(declared: {sorted(declared)})",
            dataset=descriptor.id,
            case=case,
            file=file,
            hint="check that the file belongs to this dataset and release, "
            "or declare the value in the dataset's descriptor",
        )
