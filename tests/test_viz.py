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
