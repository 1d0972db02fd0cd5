"""``python -m agent`` = ``kilnwatch``."""

import sys

from agent.cli import main

sys.exit(main())
