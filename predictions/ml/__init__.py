"""Plain-Python machine learning: no Django, DRF, Celery or app imports.

Exported here, in the order the Django side uses them: `prepare_events`, `train_churn`,
`save_churn_bundle` / `load_churn_bundle`, `build_features`, `predict_churn`, and likewise
`train_next_action` / `predict_next_action` with `build_feature_panel` and the label builders;
inputs and outputs are declared in `contracts.py`. The GRU and the tree + sequence ensemble
(`sequences.model`, `churn.sequence`) import torch, so this package does not import them:
`import predictions.ml` stays light for processes that only use the trees.
"""

from .artifacts import (
    load_churn_bundle,
    load_next_action_bundle,
    save_churn_bundle,
    save_next_action_bundle,
)
from .churn.model import predict_churn, train_churn
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
