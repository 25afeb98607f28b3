"""Layer overhead benchmark: our CoordConv vs the plain convolution vs a naive concatenating CoordConv.

Same as ``coordconv bench layer``; see ``--help``. Prints a Markdown table of median milliseconds and the
ratios to the plain convolution, with one thread and with all cores.
"""

import sys

from coordconv.bench import main

if __name__ == "__main__":
    sys.exit(main())
