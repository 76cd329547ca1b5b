"""JobQueue adapters: ``memory`` (tests, notebooks), ``sqlite`` (embedded default),
``postgres`` and ``redis`` (several hosts). Import the one you use from its module."""
