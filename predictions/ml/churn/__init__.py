"""Churn: the candidates and their selection (`model`), the time- and member-disjoint training
rows (`rows`), and the GRU and tree + sequence ensemble inside churn (`sequence`)."""
