"""One error family. Every message names the dataset, the case and the file, and says what to do next."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from os import PathLike
from typing import Any


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
        return text

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
