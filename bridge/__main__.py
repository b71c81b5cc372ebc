"""``python -m bridge`` is ``meetplugin-bridge``."""

import sys

from bridge.cli import main

sys.exit(main())
