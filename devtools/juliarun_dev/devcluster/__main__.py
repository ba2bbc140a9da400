"""`python -m juliarun_dev.devcluster up|down|status|load`: `juliarun cluster` alone."""

import sys

from .cli import main

sys.exit(main())
