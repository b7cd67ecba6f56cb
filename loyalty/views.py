"""Pages of the loyalty program itself: the home page."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from loyalty.selectors import program_overview


@login_required
def home(request):
    return render(request, "loyalty/home.html", {"overview": program_overview()})
