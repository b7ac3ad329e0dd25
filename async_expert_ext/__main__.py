"""``python -m async_expert_ext`` is the ``async-expert`` command."""
from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
