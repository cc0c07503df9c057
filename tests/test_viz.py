"""Shared figures: the episode grid draws void pixels grey and one row per model."""

import matplotlib
import matplotlib.pyplot

matplotlib.use("Agg")

import torch  # noqa: E402

from ovnb import viz  # noqa: E402


def test_void_pixels_are_grey_in_binary_masks():
    mask = torch.tensor([[0, 1], [255, 1]])
    assert viz._binary_mask_image(mask).tolist() == [[0.0, 1.0], [0.5, 1.0]]


class Everything:
    @staticmethod
    def segment(images, names):
        return torch.ones(len(images), len(names), *images.shape[-2:])

    @staticmethod
    def predict(logits):
        return (logits[:, 0] > 0).long()


def test_episode_grid_has_a_row_per_model():
    s = {"image": torch.zeros(3, 8, 8, dtype=torch.uint8), "mask": torch.zeros(8, 8, dtype=torch.long),
         "class_name": "red star"}
    fig = viz.episode_grid([s, s], {"a": Everything(), "b": Everything()})
    assert len(fig.axes) == 8
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["image", "ground truth", "a", "b"]
    assert fig.axes[-1].images[0].get_array().min() == 1  # the model's all-ones prediction
    matplotlib.pyplot.close(fig)


def test_segmentation_row_draws_the_image_the_truth_and_each_prediction():
    image = torch.zeros(3, 4, 6, dtype=torch.uint8)
    truth = torch.tensor([[0, 1, 255, 2, 2, 2]] * 4)
    fig = viz.segmentation_row(image, truth, {"a": truth, "b": torch.zeros(4, 6, dtype=torch.long)}, 3, title="t")
    assert [ax.get_title() for ax in fig.axes] == ["image", "ground truth", "a", "b"]
    drawn = fig.axes[1].images[0].get_array()
    assert tuple(drawn[0, 2]) == (0.5, 0.5, 0.5), "ignored pixels are grey"
    matplotlib.pyplot.close(fig)


def test_the_first_and_the_last_of_many_classes_get_different_colours():
    drawn = viz.label_image(torch.tensor([[0, 61]]), 62)  # hsv, a colour circle, past 20 classes
    assert tuple(drawn[0, 0]) != tuple(drawn[0, 1])
