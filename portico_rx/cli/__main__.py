"""``python -m portico_rx.cli``: the same as the ``portico-rx`` command."""

import sys

from portico_rx.cli import main

sys.exit(main())
