"""Prepare ``mapillary-vistas`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare mapillary-vistas``.

    python data_scripts/mapillary_vistas.py --root data

The logic ships with the package (``ovnb/data/prepare/mapillary_vistas.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("mapillary-vistas"))
