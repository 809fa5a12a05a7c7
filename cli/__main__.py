"""``python -m actionkit.cli`` runs the ``actionkit`` command."""

from .app import main

main()
