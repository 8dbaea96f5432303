"""Loading harmonized collections for training: dataset, sampling, patches, cache, TorchIO bridge.

The public names of 0.1's ``harmonize.loader`` module are importable from here.
"""

from harmonize.loader.batching import ThreadLoader, collate, describe_batch, load_one_batch
from harmonize.loader.dataset import HarmonizedDataset
from harmonize.loader.errors import LoaderError
from harmonize.loader.sampling import DatasetMixSampler

__all__ = ["DatasetMixSampler", "HarmonizedDataset", "LoaderError", "ThreadLoader", "collate",
           "describe_batch", "load_one_batch"]
