"""Keyset pagination of the review API: the orders its lists page through."""

from loyalty.api.pagination import KeysetPagination


class ReviewKeysetPagination(KeysetPagination):
    """The queue's order: highest priority first, then oldest id."""

    ordering = ("-priority", "id")
