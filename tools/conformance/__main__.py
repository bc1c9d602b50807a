"""``python -m tools.conformance``: see tools/conformance/cli.py."""

import sys

from tools.conformance.cli import main

sys.exit(main())
