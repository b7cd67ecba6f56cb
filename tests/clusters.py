"""A planted behavior population for the cluster tests: three groups of members built to
differ on a few features, everything else alike, so that k-means has one right answer."""

import numpy as np
import pandas as pd

# (size, days since last purchase, baskets per 30 days, spend per 30 days, coupons in a year,
# mean basket value)
PLANTED_GROUPS = {
    "weekly shoppers": (120, 4.0, 6.0, 240.0, 1.0, 40.0),
    "lapsing": (70, 150.0, 0.4, 18.0, 0.0, 45.0),
    "coupon hunters": (40, 10.0, 3.0, 45.0, 30.0, 15.0),
}


def planted_population(*, seed: int = 7, first_id: int = 1) -> tuple[pd.DataFrame, pd.Series]:
    """(features, group of each member): the feature builder's column names, a member per row,
    each planted value spread by ±10 % noise (a seeded generator)."""
    rng = np.random.default_rng(seed)
    frames, groups = [], []
    for name, (size, days, baskets, spend, coupons, basket) in PLANTED_GROUPS.items():

        def spread(value: float, n: int = size) -> np.ndarray:
            return value * rng.uniform(0.9, 1.1, n)

        frames.append(
            pd.DataFrame(
                {
                    "days_since_last_purchase": spread(days),
                    "tenure_days": spread(700.0),
                    "baskets_per_30d": spread(baskets),
                    "spend_per_30d": spread(spend),
                    "mean_basket_value": spread(basket),
                    "coupons_redeemed_365": np.round(spread(coupons)),
                    "sessions_90": np.zeros(size),  # a retailer without web sessions
                }
            )
        )
        groups += [name] * size
    features = pd.concat(frames, ignore_index=True)
    features.index = pd.Index(range(first_id, first_id + len(features)), name="member_id")
    return features, pd.Series(groups, index=features.index, name="group")
