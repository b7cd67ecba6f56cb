"""Scoring members with the active model versions: runs split into chunks that parallel
workers take (`runs`), the predictions a chunk's members get (`predict`), and the admin's
choice of the model that serves (`settings`)."""
