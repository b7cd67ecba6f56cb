"""Settings variants: `base` (development and the embedded default), `test`, `production`."""
