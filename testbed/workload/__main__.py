"""python -m testbed.workload: the reference workload as a process."""

import sys

from testbed.workload.cli import main

if __name__ == "__main__":
    sys.exit(main())
