"""``python -m farfield``: the ``farfield`` command line."""

import sys

from .cli import main

sys.exit(main())
