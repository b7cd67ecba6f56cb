"""Template filters of the home page."""
