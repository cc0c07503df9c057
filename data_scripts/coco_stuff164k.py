"""Prepare ``coco-stuff-164k`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare coco-stuff-164k``.

    python data_scripts/coco_stuff164k.py --root data

The logic ships with the package (``ovnb/data/prepare/coco_stuff164k.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("coco-stuff-164k"))
