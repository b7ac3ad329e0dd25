"""Every rule family, one module each. Importing this package registers them all
(see :mod:`async_expert_ext.scan.registry`). Add a family by adding its import here."""
from __future__ import annotations

from . import core  # noqa: F401
from . import blocking  # noqa: F401
from . import cpu  # noqa: F401
from . import crossloop  # noqa: F401
from . import locks  # noqa: F401
from . import timeouts  # noqa: F401
from . import tasks  # noqa: F401
from . import loops  # noqa: F401
from . import cancellation  # noqa: F401
from . import sessions  # noqa: F401
from . import hints  # noqa: F401
from . import fastapi  # noqa: F401
