"""``python -m adbench`` is the ``adbench`` command."""

from adbench.cli import main

main()
