"""Bulk import of members and events from CSV files or DataFrames: reading and checking the
source (`validation`, `timestamps`, `checks`), staging tables (`staging`), the import itself
(`members_and_events`, all or nothing), the rows it sets aside on request (`rejects`) and what
it reports (`results`)."""
