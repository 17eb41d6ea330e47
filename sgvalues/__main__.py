"""``python -m sgvalues`` is the ``sgvalues`` command."""

import sys

from sgvalues.cli import main

sys.exit(main())
