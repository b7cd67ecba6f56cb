"""OpenAPI answers that every API view documents alike, whichever app it belongs to."""

from drf_spectacular.utils import OpenApiResponse

from loyalty.api.serializers import ErrorOutputSerializer

UNAUTHENTICATED = OpenApiResponse(ErrorOutputSerializer, description="No valid token or session.")
FORBIDDEN = OpenApiResponse(ErrorOutputSerializer, description="The user's role may not do this.")
# Every view needs a token or session and a role that may do what it does.
ACCESS_ERRORS = {401: UNAUTHENTICATED, 403: FORBIDDEN}
