"""Model versions and predictions (built by the prediction-engine issue)."""
