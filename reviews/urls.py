"""Routes of the review workspace: notifications, the queues and member pages, and the
admin's pages under manage/."""

from django.urls import path

from reviews.views import audit, member, notifications, policy, queue

app_name = "reviews"

urlpatterns = [
    path("notifications/", notifications.notifications, name="notifications"),
    path("notifications/read/", notifications.mark_all_read, name="mark_all_read"),
    path("", queue.queue, name="queue"),
    path("expert/", queue.expert_queue, name="expert_queue"),
    path("bulk-approve/", queue.bulk_approve, name="bulk_approve"),
    path("<int:review_id>/", member.review, name="review"),
    path("<int:review_id>/decide/", member.decide, name="decide"),
    path("<int:review_id>/blind-answer/", member.blind_answer, name="blind_answer"),
    path("<int:review_id>/quick/", queue.quick_decide, name="quick_decide"),
    path("<int:review_id>/what-if/", member.what_if_view, name="what_if"),
    path("manage/policy/<str:kind>/", policy.policy_settings, name="policy"),
    path("manage/policy/<str:kind>/simulate/", policy.policy_simulation, name="policy_simulate"),
    path("manage/audit/", audit.audit_log, name="audit_log"),
]
