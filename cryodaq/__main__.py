"""``python -m cryodaq`` is the same as the ``cryodaq`` command."""

from cryodaq.cli import main

raise SystemExit(main())
