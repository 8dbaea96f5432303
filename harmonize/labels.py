"""Turn a dataset descriptor into a record's canonical name -> mask values map.

Pure functions, no I/O: merges never rewrite a mask, they are sets of values.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harmonize.descriptor import Descriptor
from harmonize.errors import LabelError
from harmonize.vocabulary import Vocabulary


def class_values(
    descriptor: Descriptor,
    vocabulary: Vocabulary,
    *,
    observed: Iterable[int] | None = None,
    annotated: Iterable[str] | None = None,
    case: str | None = None,
    file: Path | None = None,
) -> dict[str, list[int]]:
    """Canonical name -> sorted label values for one case.

    ``annotated`` restricts the result to the classes labelled in this case (names as in the
    descriptor or their synonyms). ``observed`` are the values actually found in the mask; one that
    the descriptor does not declare is a :class:`LabelError` naming ``file``, because an undeclared
    value means the plugin or the data is not what we think it is.
    """
    source = file or descriptor.source_file
    result: dict[str, list[int]] = {}
    for name, values in descriptor.classes.items():
        canonical = vocabulary.resolve(name, dataset=descriptor.id, file=descriptor.source_file)
        if canonical in result:
            raise LabelError(
                f"two classes resolve to the canonical name {canonical!r}",
                dataset=descriptor.id,
                file=descriptor.source_file,
                hint="merge them into one class in the descriptor",
            )
        result[canonical] = sorted(values)
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
        check_observed_values(descriptor, observed, case=case, file=file)
    return result


def check_observed_values(
    descriptor: Descriptor,
    observed: Iterable[int],
    *,
    case: str | None = None,
    file: Path | None = None,
) -> None:
    """Raise :class:`LabelError` if a mask holds a value the descriptor does not declare."""
    declared = set(descriptor.values) | {0}
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
