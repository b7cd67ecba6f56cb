"""A person's notifications: newest first, marked read when they say so."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from reviews.selectors.notifications import recent_notifications
from reviews.services import notifications as notifications_service


@login_required
def notifications(request):
    context = {"notifications": recent_notifications(request.user)}
    return render(request, "reviews/notifications.html", context)


@login_required
@require_POST
def mark_all_read(request):
    notifications_service.mark_all_read(request.user)
    return redirect("reviews:notifications")
