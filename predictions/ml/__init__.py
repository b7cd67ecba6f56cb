"""Plain-Python machine learning: no Django, DRF, Celery or app imports.

The public interface, in the order the Django side uses it:

    prepared = prepare_events(events)                     # optional: reuse across cutoffs
    result = train_churn(events=prepared, members=members, cutoff=..., horizon_days=90)
    checksums = save_churn_bundle(bundle=result.bundle, directory=...)
    bundle = load_churn_bundle(directory=..., checksums=checksums)
    features = build_features(events=prepared, members=members, cutoff=now)
    prediction = predict_churn(bundle=bundle, features=features)
    for record in prediction.records(names=FEATURE_NAMES): ...

and likewise `train_next_action` / `predict_next_action` with `build_feature_panel`,
`bootstrap_rule_labels` and `observed_outcome_labels`. Inputs and outputs are declared in
`contracts.py`.

Churn training also fits a GRU over each member's last events and the tree + sequence
ensemble when `ChurnConfig.sequence` is on (`result.bundle.ensemble`, see `churn_sequence`);
scoring with it needs the members' encoded events:

    sequences = churn_sequence.encode_members(ensemble=bundle.ensemble, events=frame,
                                              member_ids=features.index, cutoff=now)
    prediction = predict_churn(bundle=bundle, features=features, candidate="ensemble",
                               sequences=sequences, sequence_events=5)

Those modules import torch, so this package does not import them: `import predictions.ml`
stays light for processes that only use the trees.
"""

from .artifacts import (
    load_churn_bundle,
    load_next_action_bundle,
    save_churn_bundle,
    save_next_action_bundle,
)
from .churn import predict_churn, train_churn
from .confidence import confidence_from
from .contracts import (
    CHURN_LABELS,
    BoosterParams,
    ChurnBundle,
    ChurnConfig,
    ChurnPrediction,
    ChurnTrainingResult,
    CorruptArtifactError,
    Explanation,
    FeatureInfo,
    InsufficientHistoryError,
    InvalidInputError,
    MLError,
    NextActionBundle,
    NextActionConfig,
    NextActionPrediction,
    NextActionTrainingResult,
    SingleClassError,
)
from .explain import global_importance, top_contributions, tree_contributions
from .features import (
    FEATURE_CODES,
    FEATURE_NAMES,
    FEATURES,
    build_feature_panel,
    build_features,
    prepare_events,
)
from .labels import active_member_ids, churn_labels
from .nba import (
    bootstrap_rule_labels,
    observed_outcome_labels,
    predict_next_action,
    train_next_action,
)

__all__ = [
    "CHURN_LABELS",
    "FEATURES",
    "FEATURE_CODES",
    "FEATURE_NAMES",
    "BoosterParams",
    "ChurnBundle",
    "ChurnConfig",
    "ChurnPrediction",
    "ChurnTrainingResult",
    "CorruptArtifactError",
    "Explanation",
    "FeatureInfo",
    "InsufficientHistoryError",
    "InvalidInputError",
    "MLError",
    "NextActionBundle",
    "NextActionConfig",
    "NextActionPrediction",
    "NextActionTrainingResult",
    "SingleClassError",
    "active_member_ids",
    "bootstrap_rule_labels",
    "build_feature_panel",
    "build_features",
    "churn_labels",
    "confidence_from",
    "global_importance",
    "load_churn_bundle",
    "load_next_action_bundle",
    "observed_outcome_labels",
    "predict_churn",
    "predict_next_action",
    "prepare_events",
    "save_churn_bundle",
    "save_next_action_bundle",
    "top_contributions",
    "train_churn",
    "train_next_action",
    "tree_contributions",
]
