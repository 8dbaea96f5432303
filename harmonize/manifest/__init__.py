"""Manifests: records (source and normalized stages), building, reading, splits, duplicates."""

from harmonize._moved import moved_names

#: names the 0.1 flat module ``harmonize.manifest`` had, and the module that now holds each
_MOVED = {
    "relative_path": "harmonize.manifest.build",
    "has_label": "harmonize.manifest.build",
    "case_class_values": "harmonize.manifest.build",
    "source_section": "harmonize.manifest.build",
    "record_for_case": "harmonize.manifest.build",
    "ManifestResult": "harmonize.manifest.build",
    "build_manifest": "harmonize.manifest.build",
    "dumps": "harmonize.manifest.build",
    "write_manifest": "harmonize.manifest.build",
    "manifest_paths": "harmonize.manifest.build",
    "other_records": "harmonize.manifest.build",
    "write_splits": "harmonize.manifest.build",
    "read_manifest": "harmonize.manifest.build",
    "validate_manifest": "harmonize.manifest.build",
    "SPLITS_FILE": "harmonize.manifest.build",
}

__getattr__ = moved_names("harmonize.manifest", _MOVED)
