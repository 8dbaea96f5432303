"""Reading a manifest record's volumes in RAS, and an on-disk cache for cheap random patch reads.

:func:`read_case` reads the files a record points at (relative to the manifest's folder), whatever
their orientation, and brings them to RAS by closest canonical (``nibabel.as_closest_canonical``;
a no-op for the engine's normalized outputs). Images come out (C, X, Y, Z) float32: one path per
channel, or one 4D file with channels on the last axis. Label maps come out (X, Y, Z) unsigned
integers with their stored values (class value sets are applied by the loader).

:class:`VolumeCache` stores those arrays as uncompressed C-order ``.npy`` files. A random patch
is read with one ``pread`` per x plane (:class:`~harmonize.loader.patches.NpyFile`): only the patch's
rows are read, nothing is decompressed, and no page is mapped into the process (chunked zarr was
measured 15-40x slower for random 96^3 patches: see the loader section of the README); whole
volumes are also available as read-only memory maps. Entries live in
``<cache>/<dataset>/<case_id>/`` and are named by a key hashed from the record's source sha256,
paths, geometry and engine settings and its files' sizes and modification times: a changed
record or file gets a new entry (read and checked again) and the old one is
removed. Every file is written atomically; ``meta-<key>.json`` is written last and marks the
entry complete. An entry that fails its checks on open (bad JSON, wrong key, truncated or
unparsable array, bad foreground index) is rebuilt with a :class:`CacheWarning`, not a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize import jsonio
from harmonize.engine.lifetime import die_with_parent
from harmonize.errors import ErrorRecord, HarmonizeError
from harmonize.files import atomic_path, remove_stale_temps, write_text_atomic
from harmonize.folder_lock import folder_lock
from harmonize.gate import check_identifier
from harmonize.loader.errors import LoaderError
from harmonize.loader.patches import ForegroundIndex, NpyFile, crop
from harmonize.manifest.build import read_manifest
from harmonize.manifest.records import ManifestRecord
from harmonize.read.case import read_case as read_record_case
from harmonize.read.case import record_files

CACHE_FORMAT = 1
#: Default cache folder, next to the manifest, when no cache folder is given.
DEFAULT_CACHE_DIRNAME = "cache"
#: Record fields that do not change voxels and therefore not the cache key.
_KEY_IGNORES = ("split", "official_split", "patient_id", "label", "labels", "annotated")
_KEY_CHARS = 16
#: Names of the files a cache entry is made of (an entry deletes only these when rebuilt).
_ENTRY_FILE = re.compile(rf"(meta|image|label|foreground)-[0-9a-f]{{{_KEY_CHARS}}}\.(json|npy|npz)")


class CacheWarning(UserWarning):
    """A cache entry was unusable (corrupt or truncated) and has been rebuilt."""


@dataclass
class CaseArrays:
    """One case's arrays on the RAS grid: ``image`` (C, X, Y, Z) float32, ``label`` (X, Y, Z) or None.

    Arrays may be read-only memory maps (cache) or in-memory arrays (files). ``foreground`` is
    computed from the label on first use when not supplied. :meth:`crop_image` and
    :meth:`crop_label` read patches with ``pread`` from the cache files when there are some.
    """

    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    _foreground: ForegroundIndex | None = field(default=None, repr=False)
    image_file: NpyFile | None = field(default=None, repr=False)
    label_file: NpyFile | None = field(default=None, repr=False)

    def crop_image(
        self, start: Sequence[int] | np.ndarray, size: Sequence[int], pad_value: float = 0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Image patch (C, *size), or written into ``out`` (C, *size) and returned."""
        if self.image_file is not None:
            return self.image_file.crop(start, size, pad_value, out=out)
        return crop(self.image, start, size, pad_value, out=out)

    def crop_label(self, start: Sequence[int] | np.ndarray, size: Sequence[int]) -> np.ndarray | None:
        if self.label is None:
            return None
        if self.label_file is not None:
            return self.label_file.crop(start, size, 0)
        return crop(self.label, start, size, 0)

    @property
    def foreground(self) -> ForegroundIndex | None:
        if self._foreground is None and self.label is not None:
            self._foreground = ForegroundIndex.from_label(self.label)
        return self._foreground


def read_case(record: ManifestRecord, root: Path) -> CaseArrays:
    """A record's arrays from its files (no cache), read and checked by the one reading layer
    (:func:`harmonize.read.case.read_case`) and brought to RAS: image (C, X, Y, Z) float32,
    label (X, Y, Z) unsigned integers on the image's grid."""
    data = read_record_case(record, base=root, ras=True)
    volume = data.image.data
    channels = [volume] if volume.ndim == 3 else [volume[..., c] for c in range(volume.shape[3])]
    image = np.empty((len(channels), *volume.shape[:3]), dtype=np.float32)
    for c, channel in enumerate(channels):
        image[c] = channel
    label = None if data.label is None else np.ascontiguousarray(data.label.data)
    return CaseArrays(image=image, label=label, affine=data.image.affine)


def cache_key(record: ManifestRecord, base: Path | None = None) -> str:
    """SHA-256 over everything in a record that decides its voxels (sources, paths, geometry,
    settings) and, with ``base`` (the manifest's folder), the size and modification time of the
    files it points at: a file replaced after the entry was built (a re-exported or shifted
    label) gets a new entry, read and checked again, instead of the stale arrays."""
    data = {k: v for k, v in record.to_json().items() if k not in _KEY_IGNORES}
    if base is not None:
        images, mask = record_files(record, base)
        data["files"] = [[p.name, s.st_size, s.st_mtime_ns] for p in [*images, *([mask] if mask else [])]
                         if (s := _stat(p)) is not None]
    payload = json.dumps({"cache_format": CACHE_FORMAT, **data}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:  # missing: the reading layer reports it when the entry is built
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


class VolumeCache:
    """Cache of RAS arrays per record; ``root=None`` puts it in ``<manifest folder>/cache``.

    :meth:`load` returns the entry's arrays (memory maps, plus ``pread`` readers for patches),
    building the entry first when it is missing, stale or corrupt. Opened entries are kept
    (``max_open``) per process, so a worker opens each file once; thread-safe.
    """

    def __init__(self, root: Path | str | None = None, *, max_open: int = 64) -> None:
        self.root = Path(root) if root is not None else None
        self.max_open = max_open
        self._open: OrderedDict[str, CaseArrays] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to spawned workers without the opened memory maps (which would pickle their data).
        return {**self.__dict__, "_open": OrderedDict(), "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def base(self, manifest_dir: Path) -> Path:
        """The cache folder of the records of a manifest in ``manifest_dir``."""
        return self.root if self.root is not None else Path(manifest_dir) / DEFAULT_CACHE_DIRNAME

    def folder(self, record: ManifestRecord, manifest_dir: Path) -> Path:
        """The record's entry folder: ``<cache>/<dataset>/<case_id>``, ids through the id gate."""
        for value, what in ((record.dataset, "dataset"), (record.case_id, "case_id")):
            check_identifier(value, what=what, dataset=record.dataset, error=LoaderError)
        return self.base(manifest_dir) / record.dataset / record.case_id

    def _names(self, key: str) -> dict[str, str]:
        """The entry's file names (all match :data:`_ENTRY_FILE`)."""
        short = key[:_KEY_CHARS]
        return {"meta": f"meta-{short}.json", "image": f"image-{short}.npy",
                "label": f"label-{short}.npy", "foreground": f"foreground-{short}.npz"}

    def load(self, record: ManifestRecord, manifest_dir: Path, key: str | None = None) -> CaseArrays:
        """Arrays of the record from the cache, (re)building the entry if needed.

        ``key`` is :func:`cache_key` of the record, when the caller keeps it."""
        key = key or cache_key(record, manifest_dir)
        memo_key = f"{self.folder(record, manifest_dir)}:{key}"
        with self._lock:  # threads of a ThreadLoader share the memo
            if memo_key in self._open:
                self._open.move_to_end(memo_key)
                return self._open[memo_key]
        arrays, _ = self._load_or_build(record, manifest_dir, key)
        with self._lock:
            self._open[memo_key] = arrays
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return arrays

    def ensure(self, record: ManifestRecord, manifest_dir: Path, *, verify: bool = False) -> str:
        """Make the entry usable; return ``"ok"``, ``"built"`` or ``"rebuilt"`` (was corrupt).

        ``verify`` also re-hashes the data files against the sha256 stored at build time.
        """
        _, status = self._load_or_build(record, manifest_dir, cache_key(record, manifest_dir),
                                        verify=verify)
        return status

    def _load_or_build(
        self, record: ManifestRecord, manifest_dir: Path, key: str, *, verify: bool = False
    ) -> tuple[CaseArrays, str]:
        folder = self.folder(record, manifest_dir)
        names = self._names(key)
        if not (folder / names["meta"]).exists():
            return self._build_locked(record, manifest_dir, key), "built"
        try:
            return self._open_entry(folder, names, key, verify=verify), "ok"
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(
                f"[{record.dataset}/{record.case_id}] cache entry in {folder} is unusable "
                f"({type(exc).__name__}: {exc}); rebuilding it", CacheWarning, stacklevel=3,
            )
            return self._build_locked(record, manifest_dir, key), "rebuilt"

    def _build_locked(self, record: ManifestRecord, manifest_dir: Path, key: str) -> CaseArrays:
        """:meth:`build` under a shared lock of the cache folder: loaders build side by side, but
        not while ``harmonize cache`` holds it (:class:`~harmonize.folder_lock.FolderLockedError`)."""
        with folder_lock(self.base(manifest_dir), shared=True):
            return self.build(record, manifest_dir, key)

    def _open_entry(self, folder: Path, names: dict[str, str], key: str, *, verify: bool) -> CaseArrays:
        meta = json.loads((folder / names["meta"]).read_text(encoding="utf-8"))
        if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
            raise ValueError("cache key or format does not match the record")
        image = _open_npy(folder / names["image"], meta["image"])
        label = None
        foreground = None
        if meta["label"] is not None:
            label = _open_npy(folder / names["label"], meta["label"])
            if label.shape != image.shape[1:]:
                raise ValueError("label and image grids differ")
            with np.load(folder / names["foreground"]) as npz:
                foreground = ForegroundIndex.from_arrays({k: npz[k] for k in npz.files})
        if verify:
            for part in ("image", "label"):
                if meta[part] is not None and file_sha256(folder / names[part]) != meta[part]["sha256"]:
                    raise ValueError(f"{names[part]} does not match its stored sha256")
        return CaseArrays(image=image, label=label, affine=np.asarray(meta["affine"], dtype=float),
                          _foreground=foreground, image_file=NpyFile(folder / names["image"]),
                          label_file=NpyFile(folder / names["label"]) if label is not None else None)

    def build(self, record: ManifestRecord, manifest_dir: Path, key: str | None = None
              ) -> CaseArrays:
        """Read the record's files, write a fresh entry atomically, remove older entries.

        ``key`` is :func:`cache_key` of the record, when the caller has it."""
        key = key or cache_key(record, manifest_dir)
        folder = self.folder(record, manifest_dir)
        names = self._names(key)
        arrays = read_case(record, Path(manifest_dir))
        meta: dict[str, Any] = {
            "format": CACHE_FORMAT, "key": key, "dataset": record.dataset, "case_id": record.case_id,
            "affine": np.asarray(arrays.affine).tolist(),
            "image": _save_npy(folder / names["image"], arrays.image),
            "label": None,
        }
        if arrays.label is not None:
            meta["label"] = _save_npy(folder / names["label"], arrays.label)
            foreground = arrays.foreground
            assert foreground is not None
            with atomic_path(folder / names["foreground"]) as tmp:
                # numpy's stub checks **arrays against savez's allow_pickle: bool keyword too
                np.savez(tmp, **foreground.to_arrays())  # type: ignore[arg-type]
        write_text_atomic(folder / names["meta"], jsonio.dumps(meta, indent=1) + "\n")
        keep = set(names.values())
        for old in folder.iterdir():  # only earlier entries of this cache, never other files
            if old.name not in keep and _ENTRY_FILE.fullmatch(old.name):
                old.unlink(missing_ok=True)
        remove_stale_temps(folder)  # of a build that was killed
        return self._open_entry(folder, names, key, verify=False)


def _save_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array))
        digest = file_sha256(tmp)
    return {"shape": list(array.shape), "dtype": np.dtype(array.dtype).str, "sha256": digest}


def _open_npy(path: Path, meta: dict[str, Any]) -> np.ndarray:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if list(array.shape) != list(meta["shape"]) or array.dtype.str != meta["dtype"]:
        raise ValueError(f"{path.name}: shape/dtype {array.shape} {array.dtype.str} differ from "
                         f"{meta['shape']} {meta['dtype']}")
    if isinstance(array, np.memmap) and array.offset + array.nbytes != os.path.getsize(path):
        raise ValueError(f"{path.name}: file size does not match its header")
    return array


def default_cache(cache: bool | str | Path | VolumeCache | None) -> VolumeCache | None:
    """Normalize a ``cache=`` argument: False/None = no cache, True = next to each manifest."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, VolumeCache):
        return cache
    if cache is True:
        return VolumeCache()
    if isinstance(cache, (str, Path)):
        return VolumeCache(cache)
    raise HarmonizeError(f"cache must be a bool, a folder or a VolumeCache, got {cache!r}")


@dataclass
class CacheReport:
    """What :func:`build_cache` did: status counts (ok / built / rebuilt) and failures."""

    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "built": 0, "rebuilt": 0})
    errors: list[ErrorRecord] = field(default_factory=list)


def _ensure_one(root: Path | None, record: ManifestRecord, manifest_dir: Path, verify: bool) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)  # reported as "rebuilt"
        return VolumeCache(root).ensure(record, manifest_dir, verify=verify)


def build_cache(
    manifests: Iterable[Path],
    cache_dir: Path | None = None,
    *,
    split: str | None = None,
    workers: int = 1,
    verify: bool = False,
    progress: Callable[[], None] | None = None,
) -> CacheReport:
    """Build (or check) the cache entry of every record of ``manifests``; failures are reported,
    not raised. ``cache_dir=None`` puts each manifest's entries in ``<its folder>/cache``."""
    jobs = [(record, Path(m).resolve().parent) for m in manifests for record in read_manifest(Path(m))
            if split is None or record.split == split]
    report = CacheReport()

    def done(record: ManifestRecord, outcome: str | BaseException) -> None:
        if isinstance(outcome, BaseException):
            report.errors.append(ErrorRecord.from_exception(outcome, dataset=record.dataset,
                                                            case=record.case_id))
        else:
            report.counts[outcome] += 1
        if progress is not None:
            progress()

    if workers <= 1:
        for record, folder in jobs:
            try:
                done(record, _ensure_one(cache_dir, record, folder, verify))
            except Exception as exc:  # noqa: BLE001 - report and go on
                done(record, exc)
        return report
    with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_ensure_one, cache_dir, r, f, verify): r for r, f in jobs}
        for future in as_completed(futures):
            error = future.exception()
            done(futures[future], error if error is not None else future.result())
    return report
