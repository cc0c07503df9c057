"""ovnb - an executable research book on open-vocabulary semantic segmentation with frozen
foundation models (Fusioner, SimBaseline, PnP-OVSS, FC-CLIP).

Importing ``ovnb`` is cheap: submodules (``ovnb.metrics``, ``ovnb.papers``, ``ovnb.results`` ...)
are imported where they are used.
"""

__version__ = "0.1.0"
REPOSITORY = "ovnb/ovnb"  # GitHub owner/name the Colab badges point at
