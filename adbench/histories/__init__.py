"""History datasets: source learning histories as Hugging Face datasets in the hub.

Import the submodules you need (``builder``, ``loading``, ``reader``): this package does
not import ``datasets`` or the sources eagerly.
"""
