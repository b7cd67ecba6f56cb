"""Behavioral clusters: members grouped by how they shop, found by k-means and described by
what sets each group apart.

The rule:

- The inputs are CLUSTER_FEATURES, the feature builder's columns for recency, frequency,
  spend, basket, coupons, breadth, returns, engagement and service (nothing about the tier or
  the calendar: those are not behavior). A column that does not vary within the population
  (a retailer without web sessions, say) is left out, so that a purchases-only data set
  clusters on what it has.
- Each column is put on a log scale (log1p: counts and amounts are heavily skewed, and k-means
  on raw spend would split off a few big spenders and nothing else), a missing value becomes
  the population's median (days since the last purchase: MAX_LOOKBACK_DAYS, "none in the
  lookback"), and the result is standardized (z-scores with the population's mean and
  standard deviation).
- The number of clusters k is the one of K_RANGE with the highest mean silhouette on the
  population (a seeded sample of at most SILHOUETTE_SAMPLE members: silhouette is quadratic).
  k-means itself runs with N_INIT seeded starts on at most FIT_SAMPLE members.
- Clusters are numbered 1..k by size, largest first. Each is described by its TOP_FEATURES
  columns furthest from the population in standard deviations of the centroid (e.g. "High
  spend per 30 days, low days since last purchase"), with the cluster's and the population's
  medians on the readable scale.
- The fit is stored with the model version (`ClusterModel.to_json`) and refitted with every
  retraining; scoring assigns each member to the nearest centroid. A cluster's number means
  nothing across versions, which is why no policy may use one (`reviews.policy_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from .features import FEATURE_NAMES, MAX_LOOKBACK_DAYS
from .segments import RECENCY_FEATURE

CLUSTER_FEATURES: tuple[str, ...] = (
    RECENCY_FEATURE,
    "tenure_days",
    "baskets_per_30d",
    "spend_per_30d",
    "mean_basket_value",
    "mean_basket_items",
    "gap_cv",
    "coupons_redeemed_365",
    "coupon_response_rate_365",
    "points_redemptions_365",
    "distinct_categories_365",
    "return_share_365",
    "sessions_90",
    "email_opens_90",
    "support_contacts_365",
)
K_RANGE: tuple[int, ...] = tuple(range(2, 9))
N_INIT = 10
SEED = 0
FIT_SAMPLE = 20_000
SILHOUETTE_SAMPLE = 3_000
TOP_FEATURES = 3
# Fewer members than this give no clusters: k-means on a handful of members describes them,
# not a population.
MIN_CLUSTER_MEMBERS = 50
CRITERION = (
    "k from 2 to 8 with the highest mean silhouette; k-means on log1p, median-imputed, "
    "standardized behavior features (predictions/ml/clusters.py)"
)


@dataclass(frozen=True)
class ClusterFeature:
    """Where one of a cluster's distinguishing features stands: `z` is its centroid in
    population standard deviations; the medians are on the feature's own scale."""

    code: str
    name: str
    z: float
    cluster_median: float
    population_median: float

    @property
    def phrase(self) -> str:
        return f"{'high' if self.z > 0 else 'low'} {self.name[0].lower()}{self.name[1:]}"


@dataclass(frozen=True)
class Cluster:
    number: int
    members: int
    share: float
    top_features: tuple[ClusterFeature, ...]

    @property
    def description(self) -> str:
        phrases = [feature.phrase for feature in self.top_features]
        text = "; ".join(phrases) or "close to the population on every feature"
        return text[0].upper() + text[1:]

    @property
    def label(self) -> str:
        return f"Cluster {self.number}: {self.description}"


@dataclass(frozen=True)
class ClusterModel:
    """A fitted clustering: the transform of each feature and the centroids, in number order."""

    features: tuple[str, ...]
    medians: tuple[float, ...]  # imputation, on the log scale
    means: tuple[float, ...]
    scales: tuple[float, ...]
    centroids: tuple[tuple[float, ...], ...]  # standardized
    clusters: tuple[Cluster, ...]
    silhouettes: dict[int, float]
    members: int

    @property
    def k(self) -> int:
        return len(self.centroids)

    def cluster(self, number: int | None) -> Cluster | None:
        if number is None or not 1 <= number <= self.k:
            return None
        return self.clusters[number - 1]

    def assign(self, features: pd.DataFrame) -> list[int]:
        """Each row's cluster number (1..k): the nearest centroid."""
        if features.empty:
            return []
        z = _standardized(features, self)
        centroids = np.asarray(self.centroids, dtype="float64")
        distances = ((z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        return [int(n) + 1 for n in distances.argmin(axis=1)]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": CRITERION,
            "k": self.k,
            "members": self.members,
            "silhouettes": {str(k): s for k, s in self.silhouettes.items()},
            "features": list(self.features),
            "medians": list(self.medians),
            "means": list(self.means),
            "scales": list(self.scales),
            "centroids": [list(c) for c in self.centroids],
            "clusters": [
                {
                    "number": c.number,
                    "members": c.members,
                    "share": c.share,
                    "description": c.description,
                    "top_features": [vars(f) for f in c.top_features],
                }
                for c in self.clusters
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ClusterModel | None:
        """The clustering stored with `to_json`; None for none (a version trained before)."""
        if not data:
            return None
        return cls(
            features=tuple(data["features"]),
            medians=tuple(float(v) for v in data["medians"]),
            means=tuple(float(v) for v in data["means"]),
            scales=tuple(float(v) for v in data["scales"]),
            centroids=tuple(tuple(float(v) for v in c) for c in data["centroids"]),
            clusters=tuple(
                Cluster(
                    number=int(c["number"]),
                    members=int(c["members"]),
                    share=float(c["share"]),
                    top_features=tuple(ClusterFeature(**f) for f in c["top_features"]),
                )
                for c in data["clusters"]
            ),
            silhouettes={int(k): float(s) for k, s in data["silhouettes"].items()},
            members=int(data["members"]),
        )


def _raw(features: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """The columns as floats on their own scale, days since the last purchase filled with the
    lookback where there is none (the other gaps are filled on the log scale)."""
    frame = features.reindex(columns=list(columns)).astype("float64")
    if RECENCY_FEATURE in frame.columns:
        frame[RECENCY_FEATURE] = frame[RECENCY_FEATURE].fillna(float(MAX_LOOKBACK_DAYS))
    return frame.to_numpy()


def _log(values: np.ndarray) -> np.ndarray:
    """Signed log1p: the behavior features are counts, amounts and shares, mostly >= 0."""
    return np.sign(values) * np.log1p(np.abs(values))


def _standardized(features: pd.DataFrame, model: ClusterModel) -> np.ndarray:
    logged = _log(_raw(features, model.features))
    logged = np.where(np.isnan(logged), np.asarray(model.medians)[None, :], logged)
    return (logged - np.asarray(model.means)) / np.asarray(model.scales)


def _sample(n: int, size: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, size=size, replace=False))


def fit_clusters(features: pd.DataFrame) -> ClusterModel | None:
    """The clustering of a population (one row per member, the feature builder's columns);
    None when fewer than MIN_CLUSTER_MEMBERS members or no feature varies."""
    if len(features) < MIN_CLUSTER_MEMBERS:
        return None
    present = tuple(code for code in CLUSTER_FEATURES if code in features.columns)
    raw = _raw(features, present)
    logged = _log(raw)
    medians = np.array([_median(logged[:, i]) for i in range(logged.shape[1])])
    logged = np.where(np.isnan(logged), medians[None, :], logged)
    scales = logged.std(axis=0)
    varies = scales > 1e-9
    if not varies.any():
        return None
    columns = tuple(code for code, keep in zip(present, varies, strict=True) if keep)
    raw, logged, medians = raw[:, varies], logged[:, varies], medians[varies]
    means, scales = logged.mean(axis=0), scales[varies]
    z = (logged - means) / scales
    distinct = len(np.unique(z.round(9), axis=0))
    ks = [k for k in K_RANGE if k < distinct]
    if not ks:
        return None
    fit_rows = z[_sample(len(z), FIT_SAMPLE)]
    scored_rows = _sample(len(fit_rows), SILHOUETTE_SAMPLE)
    fits: dict[int, KMeans] = {}
    silhouettes: dict[int, float] = {}
    for k in ks:
        fits[k] = KMeans(n_clusters=k, n_init=N_INIT, random_state=SEED).fit(fit_rows)
        labels = fits[k].labels_[scored_rows]
        silhouettes[k] = (
            round(float(silhouette_score(fit_rows[scored_rows], labels)), 4)
            if len(set(labels.tolist())) > 1
            else -1.0
        )
    best = max(ks, key=lambda k: (silhouettes[k], -k))
    centroids = fits[best].cluster_centers_
    assigned = ((z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    sizes = np.bincount(assigned, minlength=best)
    order = sorted(range(best), key=lambda c: (-sizes[c], tuple(centroids[c])))
    clusters = tuple(
        _described(
            number=position + 1,
            rows=assigned == old,
            centroid=centroids[old],
            raw=raw,
            columns=columns,
        )
        for position, old in enumerate(order)
    )
    return ClusterModel(
        features=columns,
        medians=tuple(float(v) for v in medians),
        means=tuple(float(v) for v in means),
        scales=tuple(float(v) for v in scales),
        centroids=tuple(tuple(float(v) for v in centroids[old]) for old in order),
        clusters=clusters,
        silhouettes=silhouettes,
        members=len(features),
    )


def _described(
    *, number: int, rows: np.ndarray, centroid: np.ndarray, raw: np.ndarray, columns: tuple
) -> Cluster:
    """A cluster with its TOP_FEATURES furthest from the population (ties: feature order)."""
    ranked = sorted(range(len(columns)), key=lambda i: (-abs(centroid[i]), i))[:TOP_FEATURES]
    top = tuple(
        ClusterFeature(
            code=columns[i],
            name=FEATURE_NAMES.get(columns[i], columns[i]),
            z=round(float(centroid[i]), 3),
            cluster_median=round(_median(raw[rows, i]), 3),
            population_median=round(_median(raw[:, i]), 3),
        )
        for i in ranked
        if abs(centroid[i]) >= 0.05
    )
    members = int(rows.sum())
    return Cluster(
        number=number, members=members, share=round(members / len(rows), 4), top_features=top
    )


def _median(values: np.ndarray) -> float:
    """The median of the finite values (0 for none)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else 0.0


def cluster_numbers(features: pd.DataFrame, model: ClusterModel | None) -> list[int | None]:
    """Each row's cluster number; None for every row without a clustering."""
    if model is None:
        return [None] * len(features)
    return list(model.assign(features))
