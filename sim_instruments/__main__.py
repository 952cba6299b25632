"""``python -m sim_instruments FILE.yaml``: see :mod:`sim_instruments.servers.command_line`."""

import sys

from sim_instruments.servers.command_line import main

if __name__ == "__main__":
    sys.exit(main())
