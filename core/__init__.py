"""naslab's ground floor: what every layer above may import, and which imports none of
them.

- :mod:`naslab.core.errors`: the exceptions (one root, :class:`NaslabError`);
- :mod:`naslab.core.validation`: the input checks, in one place;
- :mod:`naslab.core.registry`: registries of named components and :func:`resolve`;
- :mod:`naslab.core.drivers`: who owns a running trial (driver ids, liveness,
  heartbeats).

The layers, each importing only those below it: ``core`` (1), ``search_spaces`` (2),
``searchers``, ``predictors`` and ``workers`` side by side (3), ``db`` (4), and the
application in ``naslab/`` (5: ``Study`` and its trial loop, the CLI, bench, export).
"""
