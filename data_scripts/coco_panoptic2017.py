"""Prepare ``coco-panoptic-2017`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare coco-panoptic-2017``.

    python data_scripts/coco_panoptic2017.py --root data

The logic ships with the package (``ovnb/data/prepare/coco_panoptic2017.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("coco-panoptic-2017"))
