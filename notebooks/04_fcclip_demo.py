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
# # FC-CLIP demo: segment anything you type
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/04_fcclip_demo.ipynb)
#
# Pick an image (a toy scene, a photo bundled with scikit-image, or your own upload), type a vocabulary
# - one class per line, synonyms separated by commas (`person, man, woman`) - and press **Segment**. The
# model computes the text classifier of your vocabulary once (and caches it), then shows the panoptic
# and the semantic segmentation. No file is edited: the vocabulary is an argument of
# `model.panoptic(images, vocabulary)` / `model.segment(images, vocabulary)`.
#
# With `PROFILE = "quick"` the demo runs the **released** ConvNeXt-L FC-CLIP (put `fcclip_cocopan.pth`
# from the official model zoo into `DATA_ROOT/checkpoints/`; the notebook prints the link if it is
# missing). The `toy` model only knows the toy world's colours and shapes: on photos it is a toy.

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | dryrun | quick | paper
SEED = 0  # the toy model's training seed
DATA_ROOT = "data"  # where the released checkpoint is looked for (DATA_ROOT/checkpoints/fcclip_cocopan.pth)
CACHE_DIR = "build/cache"  # unused
IMAGE = "toy scene"  # toy scene | astronaut | coffee | chelsea | rocket (scikit-image's photos)
VOCABULARY = ""  # one class per line (synonyms after commas); empty: a default for the image

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from ovnb import env
from ovnb.reproduce.fcclip import Experiment, start_notebook

runner, record = start_notebook("04_fcclip_demo", PROFILE, [SEED], DATA_ROOT)
env.report(PROFILE, [SEED])
model = runner.model(Experiment("frozen", SEED))
print(f"FC-CLIP on {model.config.clip} ({runner.weights_source()} weights)")

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
DEFAULTS = {
    "toy scene": "red star\nblue heart\ngreen circle\nyellow square\nsky\ngrass\nwater\nbrick wall\nsand",
    "astronaut": "person, astronaut\nflag\nspace suit\nrocket\nsky\nwall",
    "coffee": "coffee cup, cup\nsaucer, plate\nspoon\ntable",
    "chelsea": "cat\nwall\nfloor",
    "rocket": "rocket\nsky\ntree\nbuilding\nroad",
}


def load_image(choice: str, upload=None) -> torch.Tensor:
    """uint8 [3, H, W]: a toy scene, a scikit-image photo, or an uploaded file. Photos are resized as the
    evaluation resizes test images (real profiles: shortest edge 800, longest at most 1333; toy: 128 px)."""
    if choice == "toy scene" and upload is None:
        from ovnb.data.toy_world import ToyWorld

        return ToyWorld("test", 1, seed=SEED, image_size=runner.test_size)[0]["image"]
    if upload is not None:
        from io import BytesIO

        from PIL import Image

        array = np.asarray(Image.open(BytesIO(upload)).convert("RGB"))
    else:
        import skimage.data

        array = getattr(skimage.data, choice)()[..., :3]
    return runner.resize(torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1))


def parse_vocabulary(text: str) -> list[str]:
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError("the vocabulary is empty: type one class per line, e.g. 'cat' or 'person, man, woman'")
    return names


def show(image: torch.Tensor, vocabulary: list[str]) -> None:
    thing = [True] * len(vocabulary)  # every typed class may have instances
    with torch.no_grad():
        panoptic = model.panoptic(image[None], vocabulary, thing=thing)[0]
        semantic = model.segment(image[None], vocabulary)[0]
    labels = semantic.max(0).indices.cpu().numpy()
    palette = plt.get_cmap("tab20")(np.arange(len(vocabulary)) % 20)[:, :3]
    picture = image.permute(1, 2, 0).numpy() / 255.0
    segments = panoptic["segments"].cpu().numpy()
    rng = np.random.default_rng(0)
    colours = rng.uniform(0.2, 1.0, size=(segments.max() + 1, 3))
    colours[0] = 0
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    axes[0].imshow(picture)
    axes[0].set_title("image")
    axes[1].imshow(0.45 * picture + 0.55 * colours[segments])
    for info in panoptic["info"]:
        ys, xs = np.nonzero(segments == info["id"])
        axes[1].text(xs.mean(), ys.mean(), vocabulary[info["category_id"]].split(",")[0], fontsize=7,
                     ha="center", color="white", bbox=dict(facecolor="black", alpha=0.5, pad=1, lw=0))
    axes[1].set_title(f"panoptic: {len(panoptic['info'])} segments")
    axes[2].imshow(0.45 * picture + 0.55 * palette[labels])
    axes[2].set_title("semantic")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[k]) for k in range(len(vocabulary))]
    axes[2].legend(handles, [v.split(",")[0] for v in vocabulary], fontsize=7, loc="center left",
                   bbox_to_anchor=(1.0, 0.5))
    for ax in axes:
        ax.axis("off")
    plt.show()


# %% [markdown]
# ## The demo
#
# Change the image or the vocabulary and press **Segment** (in the rendered book the widgets are static;
# the result below is the default run).

# %%
chooser = widgets.Dropdown(options=["toy scene", *PHOTOS], value=IMAGE, description="image")
upload = widgets.FileUpload(accept="image/*", multiple=False, description="or upload")
words = widgets.Textarea(value=VOCABULARY or DEFAULTS[IMAGE], description="vocabulary",
                         layout=widgets.Layout(width="420px", height="150px"))
button = widgets.Button(description="Segment", button_style="primary")
output = widgets.Output()


def on_choice(change):
    if not VOCABULARY:
        words.value = DEFAULTS[change["new"]]


def run(_=None):
    output.clear_output(wait=True)
    with output:
        uploaded = upload.value[0]["content"].tobytes() if upload.value else None
        try:
            show(load_image(chooser.value, uploaded), parse_vocabulary(words.value))
        except ValueError as error:  # a bad vocabulary or image: say why, keep the demo alive
            print(f"cannot segment: {error}")


chooser.observe(on_choice, names="value")
button.on_click(run)
display(widgets.VBox([widgets.HBox([chooser, upload]), words, button, output]))
# the default run, shown below the widgets (a button press draws into the widgets' output area)
show(load_image(IMAGE), parse_vocabulary(VOCABULARY or DEFAULTS[IMAGE]))

# %% [markdown]
# The same thing without widgets, for a script:
#
# ```python
# import ovnb
# coco = ovnb.data.class_lists.fcclip_synonyms("data", "coco-panoptic-133")  # the training vocabulary: the seen rule
# model = ovnb.methods.build("fcclip", weights="data/checkpoints/fcclip_cocopan.pth", train_classes=coco)
# panoptic = model.panoptic(images, ["person, man, woman", "bicycle", "road", "sky"])
# ```

# %%
record.save()
runner.close()  # the training processes, if any
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
