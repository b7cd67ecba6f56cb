"""A person's notifications: newest first, marked read when they say so."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from reviews.models import Notification
from reviews.services import notifications as notifications_service

SHOWN = 100


@login_required
def notifications(request):
    notes = list(Notification.objects.filter(recipient=request.user)[:SHOWN])
    return render(request, "reviews/notifications.html", {"notes": notes})


@login_required
@require_POST
def mark_all_read(request):
    notifications_service.mark_all_read(request.user)
    return redirect("reviews:notifications")
