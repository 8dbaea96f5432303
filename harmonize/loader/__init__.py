"""Loading harmonized collections for training: dataset, sampling, patches, cache, TorchIO bridge.

The public names of 0.1's ``harmonize.loader`` module are importable from here.
"""

from harmonize.loader.dataset import (
    DatasetMixSampler,
    HarmonizedDataset,
    LoaderError,
    ThreadLoader,
    collate,
    describe_batch,
    load_one_batch,
)

__all__ = ["DatasetMixSampler", "HarmonizedDataset", "LoaderError", "ThreadLoader", "collate",
           "describe_batch", "load_one_batch"]
