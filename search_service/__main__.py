"""``python -m search_service`` runs the command line."""

from .cli import main

main()
