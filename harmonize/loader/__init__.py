"""Loading harmonized collections for training: dataset, sampling, patches, cache, TorchIO bridge,
the partial-label loss.

The public names of 0.1's ``harmonize.loader`` module are importable from here.
"""

from harmonize.loader.batching import ThreadLoader, collate, describe_batch, load_one_batch
from harmonize.loader.dataset import HarmonizedDataset
from harmonize.loader.errors import LoaderError
from harmonize.loader.losses import PartialLabelLoss, partial_label_loss
from harmonize.loader.sampling import DatasetMixSampler

__all__ = ["DatasetMixSampler", "HarmonizedDataset", "LoaderError", "PartialLabelLoss", "ThreadLoader",
           "collate", "describe_batch", "load_one_batch", "partial_label_loss"]
