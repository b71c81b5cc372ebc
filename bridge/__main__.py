"""``python -m bridge`` is ``meetplugin-bridge``."""

import sys

from .cli import main

sys.exit(main())
