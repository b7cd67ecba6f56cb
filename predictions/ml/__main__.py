"""Entry point of `python -m predictions.ml` (see cli.py)."""

from .cli import main

raise SystemExit(main())
