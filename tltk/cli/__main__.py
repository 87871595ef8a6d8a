"""`python -m tltk.cli ...`, as the `tltk` command."""

import sys

from tltk.cli import main

sys.exit(main())
