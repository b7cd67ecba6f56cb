"""Write side of the loyalty program's data, one module per concern."""
