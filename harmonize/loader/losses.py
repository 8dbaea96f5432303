"""The partial-label loss: Dice + binary cross-entropy over multi-hot masks, counted only for the
classes each sample annotates.

A mixed-dataset batch asks for K classes, but each sample's dataset labels only some of them: its
``label_present`` (K bools) says which. An un-annotated class is *unknown* in that sample, not
absent, so its channel must not be trained towards zero. This is how universal segmentation models
train on partially labelled collections: SAT (``train/loss.py``: per sample and class a sigmoid Dice
and a voxel-mean BCE, masked by its ``query_mask`` and averaged over the annotated sample-class
pairs) and the CLIP-Driven Universal Model (``utils/loss.py``: ``DiceLoss`` and ``Multi_BCELoss``
loop over each sample's annotated organs and average over them).

Per sample ``b`` and class ``k`` with ``p = sigmoid(logits[b, k])`` and ``t = mask[b, k]``
(sums over the voxels)::

    dice[b, k] = 1 - (2 * sum(p * t) + smooth_nr) / (sum(p) + sum(t) + smooth_dr)
    bce[b, k]  = mean(BCEWithLogits(logits[b, k], t))
    loss       = mean over annotated (b, k) of dice_weight * dice[b, k] + bce_weight * bce[b, k]

With ``squared_pred`` the Dice denominator is ``sum(p**2) + sum(t**2)`` (SAT's ``p=2``). When
every class is annotated this is MONAI's ``DiceLoss(sigmoid=True)`` (same ``smooth_nr``,
``smooth_dr``, ``squared_pred``) plus ``torch.nn.BCEWithLogitsLoss()``: the mean over classes of
MONAI's ``DiceCELoss(sigmoid=True)`` per channel. (MONAI's ``DiceCELoss`` on K > 1 channels uses
softmax cross-entropy, which assumes one class per voxel; harmonize's classes overlap, e.g. a
parent and its parts, so each channel is a binary problem here.)

Un-annotated (b, k) pairs are left out before anything is computed: their channels get a gradient
of exactly zero, whatever their logits. A batch with no annotated pair gives a loss of zero (still
connected to ``logits``, so ``backward()`` works and every gradient is zero).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional

Reduction = Literal["mean", "none"]


def partial_label_loss(
    logits: Tensor,
    mask: Tensor,
    label_present: Tensor,
    *,
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    squared_pred: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """Dice + BCE of ``logits`` against the multi-hot ``mask`` over the annotated classes only
    (formula in the module doc).

    Args:
        logits: (B, K, *spatial) raw network outputs, one channel per requested class.
        mask: (B, K, *spatial) multi-hot targets (a batch's ``mask``: uint8, bool or float 0/1).
        label_present: (B, K) bools (a batch's ``label_present``): which classes each sample
            annotates.
        dice_weight, bce_weight: weights of the two terms (0 switches one off).
        smooth_nr, smooth_dr: Dice smoothing added to numerator and denominator (MONAI's names
            and defaults).
        squared_pred: square predictions and targets in the Dice denominator.
        reduction: ``"mean"`` (a scalar: the mean over annotated pairs) or ``"none"`` (B, K):
            each pair's loss, 0 where not annotated.

    Raises:
        ValueError: shapes that do not match, or a negative weight.
    """
    if logits.dim() < 3 or mask.shape != logits.shape:
        raise ValueError(f"logits and mask must both be (B, K, *spatial); got logits "
                         f"{tuple(logits.shape)} and mask {tuple(mask.shape)}")
    if tuple(label_present.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"label_present must be (B, K) = {tuple(logits.shape[:2])}, got "
                         f"{tuple(label_present.shape)}")
    if dice_weight < 0 or bce_weight < 0:
        raise ValueError(f"weights must be >= 0, got dice {dice_weight}, bce {bce_weight}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    present = label_present.to(device=logits.device, dtype=torch.bool)
    # (N, V): only the annotated (sample, class) pairs, one row each
    x = logits.flatten(2)[present]
    t = mask.flatten(2)[present.to(mask.device)].to(device=logits.device, dtype=logits.dtype)
    p = torch.sigmoid(x)
    intersection = (p * t).sum(dim=1)
    denominator = ((p * p).sum(dim=1) + (t * t).sum(dim=1) if squared_pred
                   else p.sum(dim=1) + t.sum(dim=1))
    dice = 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)
    bce = functional.binary_cross_entropy_with_logits(x, t, reduction="none").mean(dim=1)
    pairs = dice_weight * dice + bce_weight * bce
    if reduction == "none":
        out = logits.new_zeros(logits.shape[:2])
        out[present] = pairs
        return out
    if pairs.numel() == 0:
        return logits.sum() * 0.0
    return pairs.mean()


class PartialLabelLoss(nn.Module):
    """:func:`partial_label_loss` as a module: ``loss_fn(logits, batch["mask"],
    batch["label_present"])``. The keyword arguments are :func:`partial_label_loss`'s."""

    def __init__(
        self,
        *,
        dice_weight: float = 1.0,
        bce_weight: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        squared_pred: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.bce_weight = bce_weight
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        self.squared_pred = squared_pred
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, mask: Tensor, label_present: Tensor) -> Tensor:
        """The loss of one batch (see :func:`partial_label_loss`)."""
        return partial_label_loss(
            logits, mask, label_present, dice_weight=self.dice_weight, bce_weight=self.bce_weight,
            smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, squared_pred=self.squared_pred,
            reduction=self.reduction,
        )
