"""Prepare ``voc2012`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare voc2012``.

    python data_scripts/voc2012.py --root data

The logic ships with the package (``ovnb/data/prepare/voc2012.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("voc2012"))
