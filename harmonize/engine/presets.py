"""Normalization settings and named presets reproducing the conventions of published systems.

A :class:`Settings` value says everything :func:`harmonize.engine.normalize.normalize_case` does to a
case; ``Settings.to_dict()`` is stable (fixed key order, plain JSON types) and is part of the
resume key, so changing any field redoes the affected cases.

Presets (``--preset NAME``) and where each convention comes from:

========================  ===================================================================
``sat``                   SAT-DS (zhaoziheng/SAT-DS, ``loader.py``): MONAI ``Orientationd``
                          RAS, ``Spacingd`` 1 x 1 x 3 mm bilinear/nearest; CT clipped to
                          -500..1000 HU then z-scored with the image's own mean/std; MR/PET
                          clipped to the image's 0.5/99.5 percentiles then z-scored.
``clip-universal``        CLIP-Driven Universal Model (ljwztc/CLIP-Driven-Universal-Model,
                          ``train.py`` defaults + ``dataset/dataloader.py``): RAS, 1.5 mm
                          isotropic, ``ScaleIntensityRanged(a_min=-175, a_max=250, b_min=0,
                          b_max=1, clip=True)``. CT only; MR falls back to the default
                          percentile z-score.
``kits23-2d``             The KiTS23 2D slice export this project reproduces: RAS, native
                          spacing, -200..300 HU (the KiTS descriptors' window) mapped to [0, 1].
``nnunet-ct``             nnU-Net v2 ``CTNormalization`` (MIC-DKFZ/nnUNet,
                          ``preprocessing/normalization/default_normalization_schemes.py`` and
                          ``dataset_fingerprint/fingerprint_extractor.py``): clip to the 0.5/99.5
                          percentiles of foreground voxels pooled over the dataset, then
                          ``(x - mean) / max(std, 1e-8)`` with the pooled foreground mean/std.
                          Needs a statistics pass. Spacing native and orientation RAS (nnU-Net's
                          own median-spacing resampling and axis order are not reproduced).
                          CT only; MR/PET use the default 0.5/99.5 percentile z-score (nnU-Net:
                          plain per-image z-score).
========================  ===================================================================

Differences from the originals, on purpose: multi-channel images are normalized per channel
(SAT-DS z-scores a multi-channel image jointly); resampling follows harmonize's grid convention
(see :mod:`harmonize.engine.resample`), not MONAI's; nothing is cropped (both SAT-DS and the
CLIP-Driven Universal Model crop to the box of voxels > 0 with MONAI ``CropForegroundd``; SAT-DS
does it before its z-score, so its mean/std are those of that box, harmonize's of the whole
image); the ``nnunet-ct`` statistics pool 10,000 foreground voxels per labelled case (seed 0),
where nnU-Net draws 10^8 / number of cases per case (seed 1234), so the percentiles and mean/std
agree within sampling error, not bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from harmonize.engine.intensity import CT_SCALINGS
from harmonize.errors import HarmonizeError

CTWindow = tuple[float, float] | Literal["dataset", "foreground"] | None


@dataclass(frozen=True)
class Settings:
    """What normalization does to every case of a run.

    * ``spacing``: target spacing in mm (RAS axis order) or ``None`` for native (no resampling).
    * ``interpolation``: for images, ``"linear"`` or ``"bspline"`` (cubic); labels are always
      nearest neighbour.
    * ``ct_window``: ``(lo, hi)`` in HU; ``"dataset"`` = the series window a plugin supplies, else
      the descriptor's ``ct_window``; ``"foreground"`` = the dataset's pooled foreground 0.5/99.5
      percentiles (needs dataset statistics); ``None`` keeps raw HU (integer CT stays exact).
    * ``ct_scaling``: after clipping, ``"unit"`` maps the window to [0, 1], ``"zscore"`` uses the
      image's own mean/std (SAT-DS), ``"dataset-zscore"`` the dataset foreground mean/std
      (nnU-Net).
    * ``mr_percentiles``: MR/PET clip percentiles before a per-image z-score; ``None`` = raw.
    * ``intensity``: ``"raw"`` disables every intensity change (all modalities).
    * ``preset``: the preset name these settings came from (recorded only).
    * ``irregular_dicom``: ``"refuse"`` (default) makes a DICOM series that is not one regular
      grid a read error; ``"resample"`` interpolates irregular slice gaps onto a regular grid and
      drops byte-identical duplicated slices (recorded in the operations; README "DICOM input").
      Left out of :meth:`to_dict` at its default, so earlier resume keys and manifests hold.
    """

    spacing: tuple[float, float, float] | None = None
    interpolation: Literal["linear", "bspline"] = "linear"
    ct_window: CTWindow = "dataset"
    ct_scaling: Literal["unit", "zscore", "dataset-zscore"] = "unit"
    mr_percentiles: tuple[float, float] | None = (0.5, 99.5)
    intensity: Literal["auto", "raw"] = "auto"
    preset: str | None = None
    irregular_dicom: Literal["refuse", "resample"] = "refuse"

    def __post_init__(self) -> None:
        def bad(message: str) -> HarmonizeError:
            return HarmonizeError(f"invalid normalization settings: {message}",
                                  hint="see `harmonize run --help` for the allowed values")

        if self.spacing is not None:
            spacing = tuple(float(v) for v in self.spacing)
            if len(spacing) != 3 or any(not (v > 0) for v in spacing):
                raise bad(f"spacing must be three positive numbers (mm), got {self.spacing}")
            object.__setattr__(self, "spacing", spacing)
        if self.interpolation not in ("linear", "bspline"):
            raise bad(f"interpolation must be 'linear' or 'bspline', got {self.interpolation!r}")
        if isinstance(self.ct_window, (tuple, list)):
            lo, hi = (float(v) for v in self.ct_window)
            if not lo < hi:
                raise bad(f"ct_window must be (low, high) with low < high, got {self.ct_window}")
            object.__setattr__(self, "ct_window", (lo, hi))
        elif self.ct_window not in ("dataset", "foreground", None):
            raise bad(f"ct_window must be (low, high), 'dataset', 'foreground' or None, "
                      f"got {self.ct_window!r}")
        if self.ct_scaling not in CT_SCALINGS:
            raise bad(f"ct_scaling must be one of {CT_SCALINGS}, got {self.ct_scaling!r}")
        if self.mr_percentiles is not None:
            lo, hi = (float(v) for v in self.mr_percentiles)
            if not 0 <= lo < hi <= 100:
                raise bad(f"mr_percentiles must satisfy 0 <= low < high <= 100, "
                          f"got {self.mr_percentiles}")
            object.__setattr__(self, "mr_percentiles", (lo, hi))
        if self.intensity not in ("auto", "raw"):
            raise bad(f"intensity must be 'auto' or 'raw', got {self.intensity!r}")
        if self.irregular_dicom not in ("refuse", "resample"):
            raise bad(f"irregular_dicom must be 'refuse' or 'resample', "
                      f"got {self.irregular_dicom!r}")

    @property
    def needs_dataset_stats(self) -> bool:
        """True when normalizing a CT case needs :func:`dataset_statistics` first."""
        return self.intensity == "auto" and (
            self.ct_window == "foreground" or self.ct_scaling == "dataset-zscore"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types in field order (tuples become lists); stable, used as resume key."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OMITTED_AT_DEFAULT and value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Inverse of :meth:`to_dict`; unknown keys are an error (typos must not pass)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HarmonizeError(f"unknown normalization setting(s) {unknown}",
                                 hint=f"allowed: {sorted(known)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated)."""
        values = asdict(self)
        values.update(changes)
        return Settings(**values)


#: Fields added after manifests v1: left out of :meth:`Settings.to_dict` at their default value.
_OMITTED_AT_DEFAULT = ("irregular_dicom",)


@dataclass(frozen=True)
class PresetInfo:
    """A named preset: its settings, a one-line summary and where the convention comes from."""

    name: str
    settings: Settings
    summary: str
    source: str
    notes: str = ""
    requires: tuple[str, ...] = field(default_factory=tuple)


PRESETS: dict[str, PresetInfo] = {
    info.name: info
    for info in (
        PresetInfo(
            name="sat",
            settings=Settings(spacing=(1.0, 1.0, 3.0), ct_window=(-500.0, 1000.0),
                              ct_scaling="zscore", mr_percentiles=(0.5, 99.5), preset="sat"),
            summary="SAT-DS: RAS, 1x1x3 mm, CT -500..1000 HU then per-image z-score, "
            "MR/PET 0.5/99.5 percentile clip + z-score",
            source="https://github.com/zhaoziheng/SAT-DS (loader.py: Orientationd RAS, "
            "Spacingd pixdim=(1, 1, 3), Normalization())",
            notes="multi-channel images are z-scored per channel (SAT-DS: jointly); no "
            "CropForegroundd, so the z-score covers the whole image",
        ),
        PresetInfo(
            name="clip-universal",
            settings=Settings(spacing=(1.5, 1.5, 1.5), ct_window=(-175.0, 250.0),
                              ct_scaling="unit", preset="clip-universal"),
            summary="CLIP-Driven Universal Model: RAS, 1.5 mm isotropic, -175..250 HU -> 0..1",
            source="https://github.com/ljwztc/CLIP-Driven-Universal-Model (train.py: --a_min -175 "
            "--a_max 250 --b_min 0 --b_max 1 --space_x/y/z 1.5; dataset/dataloader.py)",
            notes="CT only; MR/PET use the default 0.5/99.5 percentile z-score",
        ),
        PresetInfo(
            name="kits23-2d",
            settings=Settings(spacing=None, ct_window=(-200.0, 300.0), ct_scaling="unit",
                              preset="kits23-2d"),
            summary="KiTS23 2D export: RAS, native spacing, -200..300 HU -> 0..1",
            source="the KiTS23 2D slice export convention (70/10/20 patient split); window "
            "as in registry/datasets/kits23.yaml",
        ),
        PresetInfo(
            name="nnunet-ct",
            settings=Settings(spacing=None, ct_window="foreground", ct_scaling="dataset-zscore",
                              preset="nnunet-ct"),
            summary="nnU-Net CTNormalization: clip to dataset foreground 0.5/99.5 percentiles, "
            "z-score with dataset foreground mean/std",
            source="https://github.com/MIC-DKFZ/nnUNet (nnunetv2/preprocessing/normalization/"
            "default_normalization_schemes.py CTNormalization; experiment_planning/"
            "dataset_fingerprint/fingerprint_extractor.py)",
            notes="needs a statistics pass over the dataset (foreground_sample + "
            "dataset_statistics; 10,000 voxels per case, nnU-Net: 1e8 / cases); spacing native, "
            "orientation RAS; CT only",
            requires=("dataset_stats",),
        ),
    )
}


def preset_settings(name: str) -> Settings:
    """The :class:`Settings` of preset ``name``; unknown names list the known ones."""
    try:
        return PRESETS[name].settings
    except KeyError:
        raise HarmonizeError(
            f"unknown preset {name!r}",
            hint=f"choose one of: {', '.join(sorted(PRESETS))}",
        ) from None
