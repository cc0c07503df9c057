"""Table 5's classical proposal stand-ins on images whose segments are known by construction."""

import pytest
import torch

from ovnb.methods import classical_proposals as cp


def _three_regions():
    """A 48 x 64 image: a red rectangle and a blue disc on a grey background, and their masks."""
    image = torch.full((3, 48, 64), 128, dtype=torch.uint8)
    rect = torch.zeros(48, 64, dtype=torch.bool)
    rect[8:30, 6:28] = True
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(64), indexing="ij")
    disc = (yy - 26) ** 2 + (xx - 46) ** 2 <= 10 ** 2
    image[:, rect] = torch.tensor([220, 20, 20], dtype=torch.uint8)[:, None]
    image[:, disc] = torch.tensor([20, 20, 220], dtype=torch.uint8)[:, None]
    return image, {"rect": rect, "disc": disc, "background": ~(rect | disc)}


def _best_iou(proposals, mask):
    inter = (proposals & mask).flatten(1).sum(1).float()
    union = (proposals | mask).flatten(1).sum(1).float()
    return float((inter / union).max())


@pytest.mark.parametrize("method", cp.PROPOSAL_METHODS)
def test_flat_regions_are_recovered_as_proposals(method):
    image, regions = _three_regions()
    props = cp.proposals(method, image)
    assert props.dtype == torch.bool and props.shape[1:] == (48, 64)
    for name, mask in regions.items():
        assert _best_iou(props, mask) > 0.9, f"{method} misses the {name}"
    flat = props.flatten(1)
    assert len({bytes(m.numpy().tobytes()) for m in flat}) == len(flat), "proposals are deduplicated"


@pytest.mark.parametrize("method", cp.PROPOSAL_METHODS)
def test_the_hierarchy_is_capped(method):
    noise = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert len(cp.proposals(method, noise, max_proposals=7)) <= 7


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown proposal method 'gpb'"):
        cp.proposals("gpb", torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"expected one image \[3, H, W\]"):
        cp.proposals("ucm", torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
