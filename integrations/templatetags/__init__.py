"""Template filters of the integrations pages."""
