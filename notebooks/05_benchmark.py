# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Four methods, one benchmark
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/05_benchmark.ipynb)
#
# Each paper compares itself with others under its own protocol: different datasets, class lists,
# background rules, resolutions and mIoU definitions. This notebook runs the book's four methods -
# Fusioner, SimBaseline, PnP-OVSS and FC-CLIP - side by side: **the same images, the same vocabulary,
# the same seen/unseen split and the same metric code**, with what each method costs beside what it
# scores. Every method is called the same way, `segment(images, class_names)`; whatever it does inside
# (its test-time resize, prompts, PnP-OVSS's choice of candidate classes) is part of the method.
#
# **Toy profile.** The toy world's zero-shot split (the COCO-Stuff 156/15 analogue, 7 of its 62 classes
# unseen) on its test scenes and on the shifted world. The trained methods learn from the same training
# scenes with the same seen classes, unseen pixels ignored; SimBaseline's and FC-CLIP's models are those
# of their chapters (reused when they are trained already), Fusioner is trained here, PnP-OVSS trains
# nothing. Spreads are over the profile's training seeds.
#
# **Real profiles** (`quick`, `paper`): COCO-Stuff-171 (156/15), VOC-20, Pascal Context-59 and
# ADE20K-150 (`crosspaper.datasets` adds ADE20K-847 and Pascal Context-459); SimBaseline and FC-CLIP with
# their **released** weights, Fusioner **retrained** on COCO-Stuff's seen classes. On Colab set
# `PREPARE_DATA = True` in the parameters cell and the notebook prepares what it misses under `DATA_ROOT`,
# or prepare it first in a cell: `!ovnb data prepare coco-stuff-164k voc2012 pascal-context ade20k-150 --root data`
# (`paper` also reads `ade20k-847`, which needs a registration). FC-CLIP's checkpoint goes to
# `DATA_ROOT/checkpoints/fcclip_cocopan.pth` (the FC-CLIP notebooks print where to get it).
#
# These numbers are **not paper reproductions**: the protocol differences to each paper are listed
# below and on the Benchmark page, and every number carries its profile and weights source.

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | dryrun | quick | paper
SEEDS: list[int] | None = None  # training seeds of the trained methods; None: the profile's (toy: 3)
DATA_ROOT = "data"  # where the real datasets are prepared (`ovnb data prepare NAME --root data`)
PREPARE_DATA = False  # quick/paper: True downloads missing datasets into DATA_ROOT (says what, how large, where)
CACHE_DIR = "build/cache"  # unused: models and evaluations are kept under build/runs

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from ovnb import env
from ovnb.claims import check_order
from ovnb.reproduce.crosspaper import DIFFERENCES, quality_cost_figure, start_notebook, summary

runner, record = start_notebook("05_benchmark", PROFILE, SEEDS, DATA_ROOT, progress=True, prepare_data=PREPARE_DATA)
env.report(PROFILE, runner.seeds)
print("methods:", ", ".join(f"{m} ({runner.weights_source(m)} weights)" for m in runner.methods))

# %% [markdown]
# ## The benchmark definition
#
# One list of test sets, the same for every method. `zero_shot` says whether the trained methods were
# trained on the split's seen classes (then mIoU-seen, mIoU-unseen and their harmonic mean hIoU apply);
# the other sets are cross-dataset, scored by mIoU over all their classes.

# %%
display(pd.DataFrame([{"entry": e.name, "classes": len(runner.dataset(e).class_names), "test images": len(runner.indices(e)),
                       "zero-shot split": e.zero_shot, "protocol": e.protocol, "what": e.description}
                      for e in runner.entries]).set_index("entry"))
split = runner.split()
print(f"trained methods learn from {runner.train_set().name} ({len(runner.train_set())} images with a seen pixel), "
      f"{len(split.seen)} seen classes; unseen: {', '.join(split.names(split.unseen))}")

# %% [markdown]
# ## Training what is not trained yet
#
# SimBaseline's and FC-CLIP's toy models come from their chapters (trained there, or now in their worker
# processes); Fusioner is trained here with every seen class name queried at once. Toy trainings run on
# one CPU thread each, so their times compare.

# %%
runner.train_all()

# %% [markdown]
# ## Quality
#
# Every test image is segmented by every method with the entry's whole class list; the argmax goes into
# one confusion matrix per method, entry and seed, scored by the same code
# (`ovnb.reproduce.crosspaper.score_predictions`). `mean ± sd (n)`: n counts distinct weights, so the
# training-free PnP-OVSS (and released weights) count once.

# %%
frame = runner.scores(record)
table = summary(frame)
display(table)

# %% [markdown]
# Panoptic quality where a method has panoptic output: FC-CLIP, on the toy scenes (the same images, with
# their instance maps; the real entries are semantic benchmarks without instances).

# %%
panoptic = runner.panoptic_scores(record)
if len(panoptic):
    display(summary(panoptic, ("PQ", "PQ-seen", "PQ-unseen")))
else:
    print("no panoptic ground truth on these entries: FC-CLIP's PQ is in its chapter (ADE20K, COCO, street views)")

# %% [markdown]
# Which method is ahead? The ranking by mean is judged by the book's ordering helper
# (`ovnb.claims.check_order`, paired over seeds): `holds` when the interval of the difference excludes
# zero, `within noise` otherwise. A method whose weights do not change with the seed is paired with the
# same value at every seed.

# %%
RANK_METRICS = ("hIoU", "mIoU-unseen", "mIoU") if runner.toy else ("mIoU",)
for entry in runner.entries:
    for metric in RANK_METRICS:
        part = frame[frame["entry"] == entry.name].dropna(subset=[metric])
        if part["method"].nunique() < 2 or len(runner.seeds) < 2:
            continue
        values = {m: g.set_index("seed")[metric] for m, g in part.groupby("method", sort=False)}
        order = sorted(values, key=lambda m: -values[m].mean())
        claim = check_order(values, order, units="seeds", unit_label=f"{metric} points")
        record.claim(claim, entry=entry.name, metric=metric, table="benchmark ranking")
        print(f"{entry.name}, {metric}: {claim.sentence()}")

# %% [markdown]
# ### Beside each paper's own numbers
#
# Where a method's paper reported a number for one of the real entries, it stands here - in **that
# paper's protocol**, which is not always the benchmark's (see the differences below). Toy runs have no
# paper counterpart; the table is shown for orientation.

# %%
paper = runner.paper_numbers()
if not runner.toy:
    ours = frame.drop_duplicates(["method", "entry", "key"]).groupby(["method", "entry"], sort=False).mean(numeric_only=True)
    paper["ours (mean)"] = [ours[m].get((method, entry), float("nan")) if m in ours else float("nan")
                            for method, entry, m in zip(paper["method"], paper["entry"], paper["metric"])]
    paper["weights"] = [runner.weights_source(m) for m in paper["method"]]
display(paper.set_index(["method", "entry", "metric"]))

# %% [markdown]
# ## Cost
#
# Measured in this run, one method after the other, on the same machine and the same images (the first
# `crosspaper.timing_images` scored images of the first entry): parameters (trainable and total, frozen
# encoders included), the training time of this profile (when it ran), the median seconds per image and
# the peak memory (weights plus working memory; `ovnb.cost`).

# %%
costs = runner.costs(record)
display(costs.round(4))

# %%
metric = "hIoU" if runner.toy else "mIoU"
ax = quality_cost_figure(frame, costs, metric)
plt.show()

# %% [markdown]
# ## The same image, four methods
#
# The first scored test image of each entry that holds an unseen class, segmented with the whole
# vocabulary by each method (training seed `SEEDS[0]`).

# %%
from ovnb.viz import segmentation_row

seed = runner.seeds[0]
for entry in runner.entries:
    dataset = runner.dataset(entry)
    unseen = set(runner.split().unseen) if entry.zero_shot else set()
    scored = runner.indices(entry)
    index = next((i for i in scored if set(dataset[i]["mask"].unique().tolist()) & unseen), scored[0])
    sample = dataset[index]
    masks = {m: runner.predict(m, entry, seed, index) for m in runner.methods}
    segmentation_row(sample["image"], sample["mask"], masks, len(dataset.class_names),
                     title=f"{entry.name}, test image {index}, seed {seed}")
    plt.show()

# %% [markdown]
# ## Try it: one image, your vocabulary, four methods
#
# Pick a toy scene or a photo (scikit-image's), or upload your own; type one class per line and press
# **Segment**. Each method segments the image with your vocabulary; its time for this image is in the
# title. The toy models know only the toy world's colours and shapes: on photos they are toys. In the
# rendered book the widgets are static; the result below is the default run.

# %%
import ipywidgets as widgets
import numpy as np
import torch

PHOTOS = ("astronaut", "coffee", "chelsea")
DEFAULTS = {"toy scene": "red star\nblue heart\ngreen circle\nyellow square\nsky\ngrass\nwater\nbrick wall\nsand",
            "astronaut": "person\nflag\nrocket\nsky\nwall", "coffee": "cup\nsaucer\nspoon\ntable",
            "chelsea": "cat\nwall\nfloor"}


def load_image(choice: str, upload=None) -> torch.Tensor:
    """uint8 [3, H, W]: a toy test scene, a scikit-image photo or an uploaded file."""
    if upload is not None:
        from io import BytesIO

        from PIL import Image

        return torch.from_numpy(np.asarray(Image.open(BytesIO(upload)).convert("RGB")).copy()).permute(2, 0, 1)
    if choice == "toy scene":
        return runner.dataset(runner.entries[0])[0]["image"]
    import skimage.data

    return torch.from_numpy(np.ascontiguousarray(getattr(skimage.data, choice)()[..., :3])).permute(2, 0, 1)


def show_all(image: torch.Tensor, vocabulary: list[str]) -> None:
    import time

    from ovnb.methods.contract import check_class_names

    vocabulary = check_class_names(vocabulary)
    panels = []
    for method in runner.methods:
        t0 = time.perf_counter()
        scores = runner.contender(method, seed).segment(image[None], vocabulary)
        panels.append((f"{method}\n{time.perf_counter() - t0:.2f} s", scores[0].argmax(0)))
    palette = plt.get_cmap("tab20")(np.arange(len(vocabulary)) % 20)[:, :3]
    picture = image.permute(1, 2, 0).numpy() / 255.0
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3 * (len(panels) + 1), 3.4))
    axes[0].imshow(picture)
    axes[0].set_title("image")
    for ax, (title, labels) in zip(axes[1:], panels):
        ax.imshow(0.4 * picture + 0.6 * palette[labels.numpy()])
        ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[k]) for k in range(len(vocabulary))]
    axes[-1].legend(handles, vocabulary, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    for ax in axes:
        ax.axis("off")
    plt.show()


chooser = widgets.Dropdown(options=["toy scene", *PHOTOS], value="toy scene", description="image")
upload = widgets.FileUpload(accept="image/*", multiple=False, description="or upload")
words = widgets.Textarea(value=DEFAULTS["toy scene"], description="vocabulary",
                         layout=widgets.Layout(width="360px", height="140px"))
button = widgets.Button(description="Segment", button_style="primary")
output = widgets.Output()


def run(_=None):
    output.clear_output(wait=True)
    with output:
        files = upload.value
        data = bytes(files[0]["content"]) if files else None
        try:
            show_all(load_image(chooser.value, data), [w.strip() for w in words.value.splitlines() if w.strip()])
        except ValueError as error:  # a bad vocabulary: say what is wrong instead of a traceback
            print(f"cannot segment: {error}")


chooser.observe(lambda change: setattr(words, "value", DEFAULTS[change["new"]]), names="value")
button.on_click(run)
display(widgets.VBox([widgets.HBox([chooser, upload]), words, button, output]))
# the default run, shown below the widgets (a button press draws into the widgets' output area)
show_all(load_image("toy scene"), DEFAULTS["toy scene"].splitlines())

# %% [markdown]
# ## How this benchmark differs from each paper
#
# So that no number here is mistaken for a paper reproduction (those are in each chapter and on the
# Reproduction status page):

# %%
for method in runner.methods:
    print(f"{method}:")
    for line in DIFFERENCES[method]:
        print(f"  - {line}")

# %% [markdown]
# ## Deviations
#
# * Toy test images are the toy world's 64-px test scenes for every method; FC-CLIP resizes them to its
#   chapter's 128-px test size itself (its chapter draws the scenes at 128 px), so its toy numbers here
#   differ slightly from the chapter's.
# * Panoptic quality only for FC-CLIP (the one method with panoptic output) and only on the toy entries; its
#   real PQ (ADE20K, COCO, street views) is in its chapter.
# * Training times come from each model's run (`training.json`): a model trained in an earlier run keeps
#   the time measured then, on the machine it ran on.

# %%
record.save()
runner.close()
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
