"""The partial-label loss against independent references: a per-sample, per-class computation
written out with numpy (only annotated classes), MONAI's DiceLoss / DiceCELoss, and autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss, DiceLoss

from harmonize.loader import PartialLabelLoss, partial_label_loss

#: (B, K) annotated flags: sample 0 annotates classes 0 and 2, sample 1 all, sample 2 only class 3
PRESENT = torch.tensor([[True, False, True, False],
                        [True, True, True, True],
                        [False, False, False, True]])


def batch(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (3, 4, 5, 6, 7) and a multi-hot uint8 mask; channel 1 of sample 1 is empty."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn((3, 4, 5, 6, 7), generator=generator, dtype=dtype) * 3
    mask = (torch.rand((3, 4, 5, 6, 7), generator=generator) > 0.6).to(torch.uint8)
    mask[1, 1] = 0
    return logits, mask


def brute_force(logits: np.ndarray, mask: np.ndarray, present: np.ndarray, smooth: float = 1e-5
                ) -> tuple[float, dict[tuple[int, int], float]]:
    """Dice + BCE per annotated (sample, class), each written out from its definition, averaged."""
    pairs = {}
    for b in range(logits.shape[0]):
        for k in range(logits.shape[1]):
            if not present[b, k]:
                continue
            x, t = logits[b, k].ravel(), mask[b, k].ravel().astype(np.float64)
            p = 1.0 / (1.0 + np.exp(-x))
            dice = 1.0 - (2.0 * np.sum(p * t) + smooth) / (np.sum(p) + np.sum(t) + smooth)
            bce = np.mean(-(t * np.log(p) + (1.0 - t) * np.log(1.0 - p)))
            pairs[(b, k)] = dice + bce
    return float(np.mean(list(pairs.values()))), pairs


def test_equals_a_per_sample_computation_over_annotated_classes_only():
    logits, mask = batch()
    expected, pairs = brute_force(logits.numpy(), mask.numpy(), PRESENT.numpy())
    assert len(pairs) == 7
    assert partial_label_loss(logits, mask, PRESENT).item() == pytest.approx(expected, rel=1e-9)
    per_pair = partial_label_loss(logits, mask, PRESENT, reduction="none")
    assert per_pair.shape == (3, 4)
    for b in range(3):
        for k in range(4):
            assert per_pair[b, k].item() == pytest.approx(pairs.get((b, k), 0.0), rel=1e-9, abs=1e-12)
    # float32 logits and a bool mask (what a batch may carry) give the same within float32 precision
    module = PartialLabelLoss()
    assert module(logits.float(), mask.bool(), PRESENT).item() == pytest.approx(expected, rel=1e-5)


def test_unannotated_classes_get_zero_gradient_and_do_not_change_the_loss():
    logits, mask = batch(seed=1)
    logits.requires_grad_(True)
    loss = partial_label_loss(logits, mask, PRESENT)
    loss.backward()
    assert logits.grad is not None
    for b in range(3):
        for k in range(4):
            channel = logits.grad[b, k]
            if PRESENT[b, k]:
                assert channel.abs().sum() > 0
            else:
                assert torch.equal(channel, torch.zeros_like(channel))
    wild = logits.detach().clone()
    wild[~PRESENT] = torch.tensor(1e4, dtype=wild.dtype)  # saturating logits on unknown classes
    flipped = mask.clone()
    flipped[~PRESENT] = 1 - flipped[~PRESENT]
    assert partial_label_loss(wild, flipped, PRESENT).item() == pytest.approx(loss.item(), rel=1e-12)


def test_no_annotated_class_gives_zero_with_zero_gradients():
    logits, mask = batch(seed=2)
    logits.requires_grad_(True)
    loss = partial_label_loss(logits, mask, torch.zeros((3, 4), dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and not logits.grad.any()


@pytest.mark.parametrize(("smooth_nr", "smooth_dr", "squared"), [(1e-5, 1e-5, False), (1e-7, 1e-7, True),
                                                               (0.0, 1.0, False)])
def test_equals_monai_when_every_class_is_annotated(smooth_nr, smooth_dr, squared):
    logits, mask = batch(seed=3)
    everything = torch.ones((3, 4), dtype=torch.bool)
    ours = partial_label_loss(logits, mask, everything, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                              squared_pred=squared)
    dice = DiceLoss(sigmoid=True, smooth_nr=smooth_nr, smooth_dr=smooth_dr, squared_pred=squared)
    reference = dice(logits, mask.double()) + torch.nn.BCEWithLogitsLoss()(logits, mask.double())
    assert ours.item() == pytest.approx(reference.item(), rel=1e-9)
    # ... which is MONAI's DiceCELoss (sigmoid, BCE on one channel) averaged over the channels
    dice_ce = DiceCELoss(sigmoid=True, smooth_nr=smooth_nr, smooth_dr=smooth_dr, squared_pred=squared)
    per_channel = [dice_ce(logits[:, k:k + 1], mask[:, k:k + 1].double()) for k in range(4)]
    assert ours.item() == pytest.approx(torch.stack(per_channel).mean().item(), rel=1e-9)


def test_partial_batch_equals_monai_on_each_samples_annotated_channels():
    """Mean over annotated pairs = MONAI's loss on each sample's annotated channels, weighted by
    how many it annotates."""
    logits, mask = batch(seed=4)
    dice_ce = DiceCELoss(sigmoid=True)
    total, count = 0.0, 0
    for b in range(3):
        keep = PRESENT[b].nonzero().flatten()
        for k in keep.tolist():
            x, t = logits[b:b + 1, k:k + 1], mask[b:b + 1, k:k + 1].double()
            total += dice_ce(x, t).item()
            count += 1
    assert partial_label_loss(logits, mask, PRESENT).item() == pytest.approx(total / count, rel=1e-9)


def test_weights_switch_terms():
    logits, mask = batch(seed=5)
    both = partial_label_loss(logits, mask, PRESENT)
    dice = partial_label_loss(logits, mask, PRESENT, bce_weight=0.0)
    bce = partial_label_loss(logits, mask, PRESENT, dice_weight=0.0)
    assert (dice + bce).item() == pytest.approx(both.item(), rel=1e-12)
    assert partial_label_loss(logits, mask, PRESENT, dice_weight=2.0, bce_weight=0.5).item() == \
        pytest.approx(2 * dice.item() + 0.5 * bce.item(), rel=1e-12)


def test_bad_shapes_and_arguments_are_errors():
    logits, mask = batch()
    with pytest.raises(ValueError, match="logits and mask"):
        partial_label_loss(logits, mask[:, :3], PRESENT)
    with pytest.raises(ValueError, match=r"label_present must be \(B, K\) = \(3, 4\)"):
        partial_label_loss(logits, mask, PRESENT[:, :3])
    with pytest.raises(ValueError, match="weights"):
        partial_label_loss(logits, mask, PRESENT, dice_weight=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        partial_label_loss(logits, mask, PRESENT, reduction="sum")  # type: ignore[arg-type]
