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
# # Fusioner, Table 4: ablation of the fusion module and the visual decoder
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/01_fusioner_table4.ipynb)
#
# Table 4 removes one component at a time from the best model of Table 1 (CLIP-L with CLIP-L): B0 has
# both the fusion module and the visual decoder; B1 drops the decoder (the fused patch tokens are
# upsampled bilinearly); B2 drops the fusion module (frozen tokens go straight into the decoder, text
# embeddings are used as they are); B3 drops both and has no trainable parameter at all. The paper's
# ordering: B0 > B1 > B2 > B3, with the fusion module the most important part.
#
# `toy`: the same four configurations with the toy CLIP on the toy folds.

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | quick | paper
SEED = 0
DATA_ROOT = "data"  # where data_scripts/ prepare the real datasets
CACHE_DIR = "build/cache"  # frozen-feature cache


# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from ovnb import env
from ovnb.reproduce.fusioner import Experiment, paper_vs_ours, record_folds, start_notebook

env.report(PROFILE, SEED)
runner, record = start_notebook("01_fusioner_table4", PROFILE, SEED, DATA_ROOT, CACHE_DIR)
toy = runner.toy
WEIGHTS = runner.weights_source()

# %%
visual = text = "toy-clip-vit" if toy else "clip-vit-l-14"
ABLATION = {"B0-CLIP-L": ("early", True), "B1-CLIP-L": ("early", False),
            "B2-CLIP-L": ("none", True), "B3-CLIP-L": ("none", False)}
rows = []
for row, (fusion, decoder) in ABLATION.items():
    outs = [runner.run(Experiment(visual, text, fusion=fusion, decoder=decoder, fold=f)) for f in range(4)]
    mean = record_folds(record, outs, "Table 4", row, ["5^0", "5^1", "5^2", "5^3", "mIoU"], WEIGHTS,
                        visual=visual, text=text, dataset="toy folds" if toy else "PASCAL-5i")
    params = runner.build(Experiment(visual, text, fusion=fusion, decoder=decoder)).trainable_parameters()
    rows.append({"row": row, "fusion": fusion != "none", "decoder": decoder, "trainable params": params,
                 **{f"5^{o.experiment.fold}": 100 * o.miou for o in outs}, "mIoU": mean})
ours = pd.DataFrame(rows).set_index("row")
ours.round(1)

# %%
table = paper_vs_ours(record, "Table 4", PROFILE)
table.unstack("column").reindex(columns=["paper", "ours", "delta"], level=0)

# %%
means = table.reset_index()
means = means[means["column"] == "mIoU"].set_index("row")[["paper", "ours"]]
ax = means.plot.bar(figsize=(6, 3), rot=0)
ax.set_ylabel("mean mIoU (%)")
ax.set_title(f"Table 4 ablation (ours: {PROFILE}, {WEIGHTS} weights)")
plt.show()

# %% [markdown]
# ## Does the paper's ordering hold?

# %%
order = list(ABLATION)
paper_order = means["paper"].sort_values(ascending=False).index.tolist()
our_order = means["ours"].sort_values(ascending=False).index.tolist()
holds = our_order == paper_order
record.metric("table4_ordering_holds", float(holds), note="1 = same ranking of B0..B3 as the paper",
              paper=" > ".join(paper_order), ours=" > ".join(our_order))
print("paper:", " > ".join(paper_order))
print("ours: ", " > ".join(our_order))
print("the paper's ordering", "holds" if holds else "does not hold", "in this run")

# %%
record.save()
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
