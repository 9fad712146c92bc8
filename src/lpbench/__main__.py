"""``python -m lpbench``: the command line."""

import sys

from lpbench.cli import main

sys.exit(main())
