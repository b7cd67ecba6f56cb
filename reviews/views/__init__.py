"""Pages of the review workspace, one module per page: the queues, the member page, the
escalation policy, the audit log and notifications. Each view checks permission, validates,
calls one service or selector and renders; an htmx request gets a fragment from
templates/reviews/partials/. Domain errors become pages once, in reviews.page_errors."""
