"""The ``actionkit`` command: a thin Typer face over the library (parse, one call, print)."""
