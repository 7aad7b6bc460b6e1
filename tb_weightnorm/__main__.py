"""`python -m tb_weightnorm report LOGDIR`: the `tb-weightnorm` command line."""

import sys

from tb_weightnorm.cli import main

if __name__ == "__main__":
    sys.exit(main())
