"""The ``lpbench`` commands, one module each: a settings dataclass whose fields are the
command's options (see :mod:`lpbench.settings`), a ``run(settings) -> int`` and the
``COMMAND`` that :mod:`lpbench.cli` adds to the parser."""
