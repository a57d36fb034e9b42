"""``python -m hubagent`` is the same as the ``hubagent`` command."""

import sys

from hubagent.cli import main

sys.exit(main())
