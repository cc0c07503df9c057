"""Bad input to the shared contract segment(images, class_names) is refused with a clear message."""

import pytest
import torch

from ovnb.methods.contract import check_class_names, check_images, check_inputs

GOOD = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)


@pytest.mark.parametrize("names,match", [
    ([], "empty: give at least one"),
    ("cat", "the string 'cat'"),
    (["cat", ""], r"class_names\[1\] is ''"),
    (["cat", "   "], r"class_names\[1\] is '   '"),
    (["cat", "dog", "cat"], r"class_names\[2\] = 'cat' repeats class_names\[0\]"),
    (["cat", 3], r"class_names\[1\] must be a string, got int 3"),
    ({"cat"}, "list of strings, got set"),
])
def test_bad_class_names_are_refused_naming_the_entry(names, match):
    with pytest.raises(ValueError, match=match):
        check_class_names(names)


def test_nan_pixels_are_refused_with_their_position():
    images = torch.rand(2, 3, 4, 5)
    images[1, 2, 3, 4] = float("nan")
    images[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"2 non-finite value\(s\).*index \[1, 0, 0, 0\]"):
        check_images(images)


@pytest.mark.parametrize("images,match", [
    (torch.zeros(3, 8, 8), r"\[B, 3, H, W\], got \[3, 8, 8\] \(a single image"),
    (torch.zeros(1, 4, 8, 8), r"got \[1, 4, 8, 8\]"),
    (torch.zeros(0, 3, 8, 8), "at least one image"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.int64), "dtype torch.int64"),
    ([[0.0]], "torch.Tensor"),
])
def test_bad_images_are_refused(images, match):
    with pytest.raises(ValueError, match=match):
        check_images(images)


def test_good_input_passes_unchanged():
    images, names = check_inputs(GOOD, ("cat", "dog"))
    assert images is GOOD and names == ["cat", "dog"]
    assert check_images(torch.rand(1, 3, 2, 2, dtype=torch.float16)).dtype == torch.float16


def test_every_method_goes_through_the_check():
    from ovnb import methods

    model = methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit", pretrained=True)
    with pytest.raises(ValueError, match="empty"):
        model.segment(GOOD, [])
    with pytest.raises(ValueError, match="non-finite"):
        model.segment(torch.full((1, 3, 8, 8), float("nan")), ["red star"])
    assert model.segment(GOOD, ["red star", "sky"]).shape == (2, 2, 8, 8)
