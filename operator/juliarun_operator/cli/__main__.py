"""`python -m juliarun_operator.cli`: the `juliarun` command without its installed script."""

import sys

from . import main

sys.exit(main())
