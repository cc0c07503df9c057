"""The MaskFormer training augmentation: sizes, padding, determinism, and which pixels move together."""

import pytest
import torch

from ovnb.data.augment import TrainAugment, photometric_distortion


def _pair(h=30, w=50):
    image = torch.arange(3 * h * w, dtype=torch.float32).view(3, h, w) % 256
    mask = (torch.arange(h * w).view(h, w) % 7).long()
    return image, mask


def test_output_is_the_crop_padded_with_128_and_ignore():
    aug = TrainAugment(short_edges=(20,), crop=32, photometric="none", flip=False)
    image, mask = _pair(30, 50)  # resized to 20 x 33: a 20 x 32 window, padded to 32 x 32 below
    out_image, out_mask = aug(image, mask, torch.Generator().manual_seed(0))
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
    assert (out_image[:, 20:] == 128).all() and (out_mask[20:] == 255).all()
    assert (out_mask[:20] != 255).all()


def test_the_same_generator_state_gives_the_same_sample_and_masks_stay_labels():
    aug = TrainAugment.scaled(16)
    image, mask = _pair()
    a = aug(image, mask, torch.Generator().manual_seed(3))
    b = aug(image, mask, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert set(a[1].unique().tolist()) <= set(range(7)) | {255}  # nearest resizing: no new label values


def test_flip_moves_image_and_mask_together():
    image = torch.zeros(3, 8, 8)
    image[:, :, :2] = 255  # a bright left edge
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[:, :2] = 1
    aug = TrainAugment(short_edges=(8,), crop=8, photometric="none", flip=True)
    for seed in range(8):
        out_image, out_mask = aug(image, mask, torch.Generator().manual_seed(seed))
        assert torch.equal(out_image[0] > 127, out_mask == 1)


def test_scaled_recipe_spans_half_to_one_and_a_half_crops():
    aug = TrainAugment.scaled(640)
    assert aug.short_edges == tuple(range(320, 961, 64)) == TrainAugment().short_edges


def test_without_hue_and_saturation_a_grey_pixel_stays_grey():
    grey = torch.full((3, 4, 4), 100.0)
    for seed in range(10):
        out = photometric_distortion(grey, torch.Generator().manual_seed(seed), hue_saturation=False)
        assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    with pytest.raises(ValueError, match="photometric must be one of"):
        TrainAugment(photometric="autoaugment")
