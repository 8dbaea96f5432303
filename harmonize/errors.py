"""One error family. Every message names the dataset, the case and the file, and says what to do next."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass
from os import PathLike
from typing import Any

from harmonize.jsonio import printable


class HarmonizeError(Exception):
    """Base of every error harmonize raises on purpose.

    ``str(error)`` is a complete, readable sentence; :meth:`to_dict` is its machine-readable form
    (the shape of one line of ``errors.jsonl``).
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        case: str | None = None,
        file: str | PathLike[str] | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.dataset = dataset
        self.case = case
        self.file = str(file) if file is not None else None
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = "/".join(part for part in (self.dataset, self.case) if part)
        text = f"[{where}] {self.message}" if where else self.message
        if self.file:
            text += f" (file: {self.file})"
        if self.hint:
            text += f". Next step: {self.hint}"
        return printable(text)

    def to_dict(self) -> dict[str, Any]:
        return ErrorRecord.from_exception(self).to_dict()


class PluginError(HarmonizeError):
    """A plugin failed to load, registered a duplicate id, or broke the contract."""

    kind = "plugin"


class DescriptorError(PluginError):
    """A dataset descriptor (YAML) has an unknown key or a bad value."""

    kind = "descriptor"


class DiscoveryError(HarmonizeError):
    """A dataset root cannot be scanned, or a plugin's discovery raised."""

    kind = "discovery"


class ReadError(HarmonizeError):
    """A volume cannot be read, or its header/voxels are unusable."""

    kind = "read"


class LabelError(HarmonizeError):
    """Label values or names disagree with the dataset descriptor or the vocabulary."""

    kind = "label"


class GridMismatchError(LabelError):
    """A label map is not on its image's voxel grid (shape, or affine beyond tolerance)."""


class ManifestError(HarmonizeError):
    """A manifest or split file is invalid, inconsistent or from an unsupported schema version."""

    kind = "manifest"


class OutputError(HarmonizeError):
    """An output cannot be written: permission denied, read-only file system, disk full, a missing
    folder, or a file where a folder should be. ``file`` is the output path that failed."""

    kind = "output"


#: errno -> (what went wrong, next step) for :func:`output_error`.
OUTPUT_PROBLEMS: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "make the folder writable for this user (see ls -ld) "
                   "or choose another --out"),
    errno.EPERM: ("operation not permitted", "make the folder writable for this user (see "
                  "ls -ld) or choose another --out"),
    errno.EROFS: ("read-only file system", "choose an --out on a writable file system"),
    errno.ENOSPC: ("no space left on the device", "free space (df -h) or choose an --out on a "
                   "larger disk, then rerun: finished cases are kept"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or choose another "
                   "--out, then rerun: finished cases are kept"),
    errno.ENOENT: ("a folder on the path does not exist (deleted while writing?)",
                   "create the folder or fix the path, then rerun"),
    errno.EEXIST: ("a file is in the way where a folder is needed",
                   "choose another --out, or move that file away"),
    errno.ENOTDIR: ("a file is in the way where a folder is needed",
                    "choose another --out, or move that file away"),
    errno.EISDIR: ("a folder is in the way where a file is written",
                   "move that folder away or choose another --out"),
}


def output_error(exc: OSError, path: str | PathLike[str], *, dataset: str | None = None,
                 case: str | None = None) -> OutputError:
    """An :class:`OutputError` naming ``path`` (the output that could not be written) for ``exc``."""
    what, hint = OUTPUT_PROBLEMS.get(exc.errno or 0, (
        f"cannot write ({exc.strerror or type(exc).__name__})",
        "check the output folder (space, permissions) and rerun"))
    return OutputError(f"cannot write output: {what}", dataset=dataset, case=case, file=path,
                       hint=hint)


@dataclass(frozen=True)
class ErrorRecord:
    """A failure kept for the final report instead of stopping the run."""

    kind: str
    dataset: str | None
    case: str | None
    file: str | None
    message: str
    hint: str | None = None

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, dataset: str | None = None, case: str | None = None
    ) -> ErrorRecord:
        if isinstance(exc, HarmonizeError):
            return cls(
                kind=exc.kind,
                dataset=exc.dataset or dataset,
                case=exc.case or case,
                file=exc.file,
                message=exc.message,
                hint=exc.hint,
            )
        return cls(
            kind="unexpected",
            dataset=dataset,
            case=case,
            file=None,
            message=f"{type(exc).__name__}: {exc}",
            hint="this looks like a bug in harmonize or the plugin; please report it with this line",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return str(
            HarmonizeError(
                self.message, dataset=self.dataset, case=self.case, file=self.file, hint=self.hint
            )
        )


class RefusedRecordWarning(UserWarning):
    """A manifest record was refused by the id gate (its error is the warning's message)."""
