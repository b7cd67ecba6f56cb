"""Forms of the review pages: deciding a review (decision) and editing a policy (policy)."""
