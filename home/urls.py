"""The home page's route. Not namespaced: `home` is the name LOGIN_REDIRECT_URL and every
page's navigation link to."""

from django.urls import path

from home import views

urlpatterns = [
    path("", views.home, name="home"),
]
