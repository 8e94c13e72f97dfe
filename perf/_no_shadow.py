"""Imported first by every script in this folder, for its side effect on ``sys.path``.

Python puts a script's folder first on ``sys.path``, and this folder holds
``datasets.py`` (the name the datasets issue gives its benchmark), which would then
shadow the ``datasets`` package for everything the script imports (adbench included).
The folder moves to the end of the path, where the scripts still find each other.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE in sys.path:
    sys.path.remove(_HERE)
    sys.path.append(_HERE)
