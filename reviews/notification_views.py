"""A person's notifications: newest first, marked read when they say so."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from reviews.models import Notification

SHOWN = 100


@login_required
def notifications(request):
    notes = list(Notification.objects.filter(recipient=request.user)[:SHOWN])
    return render(request, "reviews/notifications.html", {"notes": notes})


@login_required
@require_POST
def mark_all_read(request):
    Notification.objects.filter(recipient=request.user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    return redirect("reviews:notifications")
