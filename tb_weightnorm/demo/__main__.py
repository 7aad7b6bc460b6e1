"""`python -m tb_weightnorm.demo`: trains the demo, starts TensorBoard, prints the URL."""

import sys

from tb_weightnorm.demo.training import main

if __name__ == "__main__":
    sys.exit(main())
