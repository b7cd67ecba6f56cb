"""Top-level routes: pages, the admin, the API and its schema."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    # The home page reads every app: it lives in the top layer, `home`, named by a string.
    path("", include("home.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("loyalty.api.urls")),
    path("api/", include("reviews.api.urls")),
    path("api/", include("integrations.api.urls")),
    path("api/", include("learning.api.urls")),
    path("reviews/", include("reviews.urls")),
    # The learning loop's page sits with the other managers' pages.
    path("reviews/manage/loop/", include("learning.urls")),
    path("integrations/", include("integrations.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's init script from this URL (?script), not inline: the
    # Content-Security-Policy runs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

# An unknown address under /api/ answers JSON, like every API error (loyalty.api.exceptions).
handler404 = "loyalty.api.exceptions.not_found"
