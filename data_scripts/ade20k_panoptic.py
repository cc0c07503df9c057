"""Prepare ``ade20k-panoptic`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare ade20k-panoptic``.

    python data_scripts/ade20k_panoptic.py --root data

The logic ships with the package (``ovnb/data/prepare/ade20k_panoptic.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("ade20k-panoptic"))
