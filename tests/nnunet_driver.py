"""Run nnU-Net v2's own dataset checks, planning and split loading on exported datasets.

Not a test module: ``tests/test_export_nnunet.py`` runs it in a subprocess with ``PYTHONPATH``
pointing at the nnU-Net packages it installed (``tests/nnunet-requirements.txt``) and
``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` set, because nnU-Net reads those at
import time and starts its worker pools with ``spawn``.

Argument: a JSON object ``{"datasets": [ids], "samples": N, "splits": {"id": [folds]},
"regions": [ids]}``. For
each dataset it runs what ``nnUNetv2_plan_and_preprocess -d ID --verify_dataset_integrity -c
3d_fullres -np 1`` runs, through the same API functions (``plan_and_preprocess_api``):
``verify_dataset_integrity``, the fingerprint, ``ExperimentPlanner`` and the 3d_fullres
preprocessing. One deviation, for speed: the fingerprint pools ``samples`` foreground voxels
(nnU-Net: 10^8, about a minute of sampling and sorting on 2 cores) over the cases. Then, for
each dataset and fold in ``splits``, it builds the trainer as ``nnUNetv2_train`` does
(``get_trainer_from_args``, CPU) and calls its ``do_split``, the function training uses to
read ``splits_final.json``; for each dataset in ``regions`` it decodes a voxel of each label,
given as region scores, with nnU-Net's ``LabelManager`` (what inference does with
``regions_class_order``). Prints a JSON object ``{"splits": {"id": {"fold": {"train": [...],
"val": [...]}}}, "regions": {"id": {"label": decoded}}, "seconds": {...}}`` (with how long each
step took) as its last line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def main(argv: list[str]) -> dict[str, Any]:
    """Run the steps the argument asks for; return the folds, decoded labels and step times."""
    args = json.loads(argv[0])
    import numpy as np
    import torch
    from batchgenerators.utilities.file_and_folder_operations import join, load_json
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
        DatasetFingerprintExtractor,
    )
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )
    from nnunetv2.paths import nnUNet_raw
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    samples = float(args["samples"])

    class SampledFingerprint(DatasetFingerprintExtractor):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.num_foreground_voxels_for_intensitystats = samples

    result: dict[str, Any] = {"splits": {}, "regions": {}, "seconds": {}}
    for dataset_id in args["datasets"]:
        start = time.monotonic()
        extract_fingerprint_dataset(dataset_id, SampledFingerprint, num_processes=1,
                                    check_dataset_integrity=True, clean=True, verbose=False,
                                    show_progress_bar=False)
        planned = time.monotonic()
        plan_experiment_dataset(dataset_id)
        preprocessed = time.monotonic()
        preprocess_dataset(dataset_id, configurations=("3d_fullres",), num_processes=(1,),
                           show_progress_bar=False)
        result["seconds"][str(dataset_id)] = {
            "verify+fingerprint": round(planned - start, 1),
            "plan": round(preprocessed - planned, 1),
            "preprocess": round(time.monotonic() - preprocessed, 1)}
    for dataset_id in args.get("regions", []):  # a voxel of each label, as region scores
        folder = join(nnUNet_raw, convert_id_to_dataset_name(int(dataset_id)))
        doc = load_json(join(folder, "dataset.json"))
        manager = LabelManager(doc["labels"], regions_class_order=doc["regions_class_order"])
        decoded = {}
        for label in manager.all_labels[1:]:
            scores = np.array([[[[float(label in (r if isinstance(r, tuple) else (r,)))]]]
                               for r in manager.foreground_regions])
            decoded[str(label)] = int(manager.convert_probabilities_to_segmentation(scores).item())
        result["regions"][str(dataset_id)] = decoded
    for dataset_id, folds in args.get("splits", {}).items():
        for fold in folds:  # the trainer `nnUNetv2_train ID 3d_fullres FOLD -device cpu` builds
            trainer = get_trainer_from_args(str(dataset_id), "3d_fullres", fold,
                                            device=torch.device("cpu"))
            train, val = trainer.do_split()
            result["splits"].setdefault(str(dataset_id), {})[str(fold)] = {
                "train": sorted(str(k) for k in train), "val": sorted(str(k) for k in val)}
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
