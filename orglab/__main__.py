"""`python -m orglab ...` is the same as the `orglab` command."""

import sys

from orglab.cli import main

sys.exit(main())
