"""Quality checks of harmonized collections: per-case statistics and the HTML report."""

from harmonize._moved import moved_names

#: names the 0.1 flat module ``harmonize.qa`` had, and the module that now holds each
_MOVED = {
    "Flag": "harmonize.qa.inspect",
    "ChannelStats": "harmonize.qa.inspect",
    "Panels": "harmonize.qa.montage",
    "CaseQA": "harmonize.qa.inspect",
    "QAReport": "harmonize.qa.summary",
    "channel_stats": "harmonize.qa.inspect",
    "value_counts": "harmonize.qa.inspect",
    "is_normalized": "harmonize.qa.inspect",
    "case_slices": "harmonize.qa.montage",
    "inspect_case": "harmonize.qa.inspect",
    "histogram": "harmonize.qa.stats",
    "summarize": "harmonize.qa.summary",
    "collect_qa": "harmonize.qa.summary",
    "THRESHOLDS": "harmonize.qa.inspect",
    "FLAG_CODES": "harmonize.qa.inspect",
    "HIST_BINS": "harmonize.qa.stats",
    "INTENSITY_BINS": "harmonize.qa.stats",
    "CT_DISPLAY_WINDOW": "harmonize.qa.inspect",
    "QUANTILES": "harmonize.qa.stats",
    "MAX_SAMPLE": "harmonize.qa.stats",
    "AXES": "harmonize.qa.inspect",
}

__getattr__ = moved_names("harmonize.qa", _MOVED)
