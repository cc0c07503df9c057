"""Prepare ``coco2014`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare coco2014``.

    python data_scripts/coco2014.py --root data

The logic ships with the package (``ovnb/data/prepare/coco2014.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("coco2014"))
