"""``python -m benchmarks.reproduce [--budget-minutes M]`` (``make reproduce``)."""

import sys

from benchmarks.reproduce.run import main

main(sys.argv[1:])
