"""monitor: poll news sources, match tracked actors and topics, alert through channels."""

import os

# rensa's allocator (mimalloc) reserves 1 GiB of address space when it loads unless told
# less: more than the whole cap of a parse worker (``monitor.sandbox``), which inherits what
# was loaded before its cap was set. Set before any of monitor's modules can load rensa.
os.environ.setdefault("MIMALLOC_ARENA_RESERVE", "64MiB")

__version__ = "0.1.0"
