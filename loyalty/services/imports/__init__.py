"""Bulk import of members and events from CSV files or DataFrames: reading and checking the
source (`validation`, `checks`), staging tables (`staging`), and the all-or-nothing import
itself (`members_and_events`)."""
