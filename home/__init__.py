"""The home page: what needs the signed-in person's attention now. It reads every app, so it is
the top layer (pyproject.toml's import-linter contract)."""
