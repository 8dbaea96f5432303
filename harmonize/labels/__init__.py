"""Label vocabulary, channel vocabulary and label rules (renames, merges, hierarchy)."""

from harmonize._moved import moved_names

#: names the 0.1 flat module ``harmonize.labels`` had, and the module that now holds each
_MOVED = {
    "class_values": "harmonize.labels.rules",
    "check_observed_values": "harmonize.labels.rules",
}

__getattr__ = moved_names("harmonize.labels", _MOVED)
