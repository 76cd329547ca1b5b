"""portico_rx's plugins for pytest and hypothesis, outside the ``portico_rx`` package.

Test tools load their plugins by entry point in every project where portico_rx is
installed, whether the project uses portico_rx or not. Importing any module inside
``portico_rx`` runs ``portico_rx/__init__.py`` and loads the library (pydantic,
reactivex, ...); these modules live apart (as hypothesis' own ``_hypothesis_pytestplugin``
does) and import portico_rx only when a fixture or strategy is actually used.

* :mod:`_portico_rx_plugins.pytest_fixtures` — entry point ``pytest11: portico_rx``.
* :mod:`_portico_rx_plugins.hypothesis_types` — entry point ``hypothesis``.
"""
