"""What people read of a behavioral cluster, and how a page or the API names one.

A cluster's number means something only within the model version that fitted it
(`predictions.ml.clusters`): a filter names a cluster by both, as the token
"<version id>-<number>", and offers the clusters of the versions in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from predictions.ml.clusters import Cluster, ClusterModel
from predictions.models import ModelVersion, PredictionKind


@dataclass(frozen=True)
class ClusterRef:
    version_id: int
    number: int

    @property
    def token(self) -> str:
        return f"{self.version_id}-{self.number}"

    @classmethod
    def parse(cls, token: str | None) -> ClusterRef | None:
        """The cluster a token names; None for anything else (a filter then does not apply)."""
        version, _, number = (token or "").partition("-")
        if not (version.isdigit() and number.isdigit()) or len(token or "") > 24:
            return None
        return cls(version_id=int(version), number=int(number))


def version_clusters(version: ModelVersion) -> ClusterModel | None:
    """The behavioral clustering fitted with the version (None for a version trained before
    clusters, or on too few members: its predictions have none)."""
    return ClusterModel.from_json((version.metrics or {}).get("behavior_clusters"))


class ClusterLabels:
    """Clusters of some versions by (version id, number): their clusterings read in one query."""

    def __init__(self, models: dict[int, ClusterModel | None]) -> None:
        self._models = models

    @classmethod
    def for_versions(cls, version_ids: set[int | None]) -> ClusterLabels:
        wanted = version_ids - {None}
        if not wanted:
            return cls({})
        stored = ModelVersion.objects.filter(pk__in=wanted).values_list(
            "pk", "metrics__behavior_clusters"
        )
        return cls({pk: ClusterModel.from_json(data) for pk, data in stored})

    def cluster(self, version_id: int | None, number: int | None) -> Cluster | None:
        """The cluster; a version not read yet is read now (one query)."""
        if version_id is None or number is None:
            return None
        if version_id not in self._models:
            self._models.update(ClusterLabels.for_versions({version_id})._models)
        model = self._models.get(version_id)
        return model.cluster(number) if model is not None else None

    def label(self, version_id: int | None, number: int | None) -> str:
        """ "Cluster 2: High spend per month; …", or '' where there is none."""
        found = self.cluster(version_id, number)
        return found.label if found is not None else ""


@dataclass(frozen=True)
class VersionClustering:
    version_id: int
    model: ClusterModel


def active_clusterings() -> dict[str, VersionClustering]:
    """The clustering of each kind's version in force, by kind (a kind without one: absent).
    Reads only the clusterings of the versions' reports."""
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list(
        "pk", "kind", "metrics__behavior_clusters"
    )
    found = {}
    for version_id, kind, stored in active:
        model = ClusterModel.from_json(stored)
        if model is not None:
            found[kind] = VersionClustering(version_id=version_id, model=model)
    return found


def active_cluster_choices() -> list[tuple[str, str]]:
    """(token, label) of each cluster of the versions in force, by kind then number (the
    queue asks on every page view)."""
    kinds = dict(PredictionKind.choices)
    choices = []
    for kind, clustering in sorted(active_clusterings().items()):
        for cluster in clustering.model.clusters:
            ref = ClusterRef(version_id=clustering.version_id, number=cluster.number)
            label = f"{kinds.get(kind, kind)} v{clustering.version_id} · {cluster.label}"
            choices.append((ref.token, label))
    return choices
