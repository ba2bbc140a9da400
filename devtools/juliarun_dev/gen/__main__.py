"""`python -m juliarun_dev.gen [--check]`: `make generate`."""

import sys

from . import main

sys.exit(main())
