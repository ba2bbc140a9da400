"""`python -m juliarun_operator.gen [--check]`: `make generate`."""

import sys

from . import main

sys.exit(main())
