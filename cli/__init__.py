"""The ``recsys`` command line (DESIGN section 6), the top layer: it imports ``serving``,
``training`` and ``features``, and nothing imports it. The entry point is :func:`cli.main.main`;
each command group has its module, and :mod:`cli.render` prints for all of them."""
