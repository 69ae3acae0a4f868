"""``python -m sslad``: the command line, the same as the ``sslad`` console script (also ``torchrun -m sslad``)."""

from sslad.cli import main

main()
