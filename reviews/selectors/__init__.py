"""Read side of the review workspace, one module per job: the queues, the member page, the
catalogs the decision forms offer, the policy in force, pauses, notifications and the audit log.
Selectors never write; the formatting of what pages show lives in `formatting`."""
