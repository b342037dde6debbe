"""`python -m cli`: the same as the `lorag` console script."""

import sys

from cli.main import main

sys.exit(main())
