"""Synthetic loyalty data with known truth: members and their habits (`members`), their events
(`events`), each member's true churn probability (`truth`), and the run that stores them
(`generation`)."""
