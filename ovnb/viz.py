"""Figures the notebooks share."""

from __future__ import annotations

import torch


def _binary_mask_image(mask: torch.Tensor) -> torch.Tensor:
    """0 black, 1 white, void (255) mid-grey."""
    out = mask.float().clone()
    out[mask == 255] = 0.5
    return out


def episode_grid(samples: list[dict], models: dict, title: str | None = None, image_label: str = "image"):
    """Episodes in columns; rows: the image (titled with the queried class), its ground truth, and
    each model's binary prediction (``models``: row label -> model with ``segment`` and ``predict``)."""
    import matplotlib.pyplot as plt

    rows = 2 + len(models)
    fig, axes = plt.subplots(rows, len(samples), figsize=(2.2 * len(samples), 2.2 * rows), squeeze=False)
    for k, s in enumerate(samples):
        axes[0, k].imshow(s["image"].permute(1, 2, 0).numpy())
        axes[0, k].set_title(f'"{s["class_name"]}"', fontsize=8)
        axes[1, k].imshow(_binary_mask_image(s["mask"]).numpy(), cmap="gray", vmin=0, vmax=1)
        for r, model in enumerate(models.values()):
            with torch.no_grad():
                pred = model.predict(model.segment(s["image"][None], [s["class_name"]]))[0]
            axes[2 + r, k].imshow(pred.cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    for r, label in enumerate([image_label, "ground truth", *models]):
        axes[r, 0].set_ylabel(label)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title)
    plt.tight_layout()
    plt.show()
    return fig


def label_image(mask: torch.Tensor, num_classes: int, ignore_index: int = 255):
    """A semantic mask ``[H, W]`` of class ids as an RGB array (a fixed colour per class from
    matplotlib's ``tab20``/``hsv`` cycle; ignored pixels mid-grey), for ``imshow``."""
    import matplotlib
    import numpy as np

    cmap = matplotlib.colormaps["tab20" if num_classes <= 20 else "hsv"]
    # hsv is a circle: spread the classes over [0, 1) so the first and the last do not share a colour
    colours = np.array([cmap(i / num_classes if num_classes > 20 else i)[:3] for i in range(num_classes)])
    m = mask.cpu().long().numpy()
    out = np.full((*m.shape, 3), 0.5)
    valid = (m != ignore_index) & (m >= 0) & (m < num_classes)
    out[valid] = colours[m[valid]]
    return out


def seed_bars(frame, by: str, metrics=("mIoU-seen", "mIoU-unseen", "hIoU"), title: str = "", ax=None):
    """Grouped bars of ``metrics`` (columns of ``frame``, one row per configuration and seed) per
    configuration (column ``by``): the mean over seeds with ± sd whiskers."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = frame.melt(id_vars=[by, "seed"], value_vars=list(metrics))
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    sns.barplot(long, x="variable", y="value", hue=by, errorbar="sd", ax=ax)
    ax.set(xlabel="", ylabel="%", title=title)
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
    return ax


def segmentation_row(image: torch.Tensor, truth: torch.Tensor, predictions: dict, num_classes: int, title: str = ""):
    """One row: the image (uint8 ``[3, H, W]``), its ground truth and each prediction of ``predictions``
    (title -> label map ``[H, W]``), in ``label_image``'s colours; returns the figure."""
    import matplotlib.pyplot as plt

    panels = [("image", image.permute(1, 2, 0).cpu().numpy()), ("ground truth", label_image(truth, num_classes))]
    panels += [(name, label_image(label, num_classes)) for name, label in predictions.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.8), squeeze=False)
    for ax, (name, picture) in zip(axes[0], panels):
        ax.imshow(picture)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title, y=1.02)
    return fig
