"""Plain-Python machine learning: no Django, DRF, Celery or app imports."""
