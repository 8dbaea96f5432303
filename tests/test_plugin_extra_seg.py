"""HCC-TACE-Seg through its DICOM-SEG series in TCIA's NBIA layout: each SEG is paired with the
CT phase it references among several phases and studies, segments map to classes by code or
label, overlaps kept.

Oracle: highdicom's own decoding of each segment (slices ordered by z from the CT headers).
"""

from __future__ import annotations

import numpy as np
import pydicom

from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case

NAMES = {"Liver": "liver", "Mass": "liver tumor", "Portal vein": "portal vein",
         "Abdominal aorta": "aorta"}


def _highdicom_masks(seg_file, ct_folder) -> dict[str, np.ndarray]:
    import highdicom as hd

    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_folder.iterdir()]
    uids = [h.SOPInstanceUID for h in sorted(headers, key=lambda h: float(
        h.ImagePositionPatient[2]))]
    seg = hd.seg.segread(seg_file)
    out = {}
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).segment_label
        pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[number],
                                                   assert_missing_frames_are_empty=True)
        out[NAMES[label]] = pixels[..., 0].transpose(2, 1, 0) > 0
    return out


def test_hcc_tace_seg_pairs_the_segmented_phase_and_maps_segments(catalog, tmp_path):
    plugin = catalog.get("hcc-tace-seg")
    root = plugin.fabricate(tmp_path / "hcc", n_cases=3)
    found = discover(plugin, root)
    assert [c.case_id for c in found.cases] == ["HCC_001", "HCC_002"]
    assert [s.case_id for s in found.skipped] == ["HCC_003"]  # its segmented phase is missing
    assert "not in the patient folder" in found.skipped[0].reason
    for case in found.cases:
        (ct,) = case.images
        assert "-ARTERIAL-" in ct.name and case.patient_id == case.case_id
        data = read_case(case, plugin=plugin)
        assert data.label is not None and data.label.classes is not None
        want = _highdicom_masks(case.label, ct)
        assert int((want["liver"] & want["liver tumor"]).sum()) > 0  # overlap as released
        for name, mask in want.items():
            got = np.isin(data.label.data, data.label.classes[name])
            assert np.array_equal(got, mask), (case.case_id, name)
