"""The ``recsys`` command line (DESIGN section 6), the top layer: it imports ``serving``,
``training`` and ``features``, and nothing imports it. The entry point is :func:`cli.main.main`;
each command group has its module, and :mod:`cli.render` prints for all of them."""

import os

# Polars allocates through jemalloc, which by default keeps freed pages for 10 s before it gives
# them back; NumPy, SciPy and implicit allocate through glibc and cannot reuse them, so during
# `recsys train` the process also carries gigabytes of Polars' garbage. Giving pages back at
# once (set before Polars is first imported; a value the user set wins) took the peak RSS of
# training at 20M events from 4.21 GB to 3.91 GB at no measurable cost in time (docs/benchmarks.md).
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
