"""The home page: the program's counts, what waits for the user and, for admins, the health of
the system with where each part is handled."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_safe

from home.selectors import attention_for, system_health
from loyalty.roles import ADMIN, role_of
from loyalty.selectors import program_overview

AUDIT_ROWS = 8


@login_required
@require_safe
def home(request):
    is_admin = role_of(request.user) == ADMIN
    context = {
        "overview": program_overview(audit_rows=AUDIT_ROWS if is_admin else 0),
        "attention": attention_for(request.user),
        "health": system_health() if is_admin else (),
    }
    return render(request, "home/home.html", context)
