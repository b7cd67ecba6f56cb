"""Throughput of the sequence churn model on generated members: encoding, training, scoring.

    .venv/bin/python bench/sequence.py --members 20000

No database: events come from the seeded generator the ML tests use (tests/ml/conftest.py,
about 150 events per member over 420 days). Training rows are the members active at a training
cutoff, labelled by churn over the horizon after it; the member-disjoint validation rows are
the held-out members at a cutoff one month later (as churn.py splits). Prints, in sequences per
second: preparing the events (once), encoding, each training epoch (training pass alone, and
validation pass), then scoring every member at the latest cutoff: encoding and the forward pass
separately, and occlusion attribution (members per second). Then the held-out AUC for scale.
`--threads` sets torch's intra-op threads (the model's default is 1; parallelism is meant to
come from Celery workers).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from predictions.ml.labels import active_member_ids, churn_labels  # noqa: E402
from predictions.ml.sequences.attribution import occlusion_attribution  # noqa: E402
from predictions.ml.sequences.encoding import (  # noqa: E402
    encode_sequences,
    prepare_sequence_events,
)
from predictions.ml.sequences.model import SequenceModelConfig, train_sequence_churn  # noqa: E402
from tests.ml.conftest import CUTOFF, HORIZON, make_loyalty_data  # noqa: E402

SEED = 7
VALIDATION_SHARE = 0.2
TRAIN_CUTOFF = CUTOFF - pd.Timedelta(days=HORIZON + 30)
VALIDATION_CUTOFF = CUTOFF - pd.Timedelta(days=HORIZON)
ATTRIBUTION_MEMBERS = 500


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>12,.0f} /s  ({rows:,} in {seconds:.2f} s)"


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def labelled(prepared_events, events: pd.DataFrame, ids: np.ndarray, cutoff, vocabulary=None):
    encoded, seconds = timed(
        lambda: encode_sequences(
            events=prepared_events, member_ids=ids, cutoff=cutoff, vocabulary=vocabulary
        )
    )
    labels = churn_labels(events=events, member_ids=ids, cutoff=cutoff, horizon_days=HORIZON)
    return encoded, labels.to_numpy(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden-size", type=int, default=SequenceModelConfig.hidden_size)
    args = parser.parse_args()

    data, seconds = timed(lambda: make_loyalty_data(n_members=args.members, seed=SEED))
    events = data.events
    print(f"generated {len(events):,} events for {args.members:,} members in {seconds:.1f} s")
    prepared, seconds = timed(lambda: prepare_sequence_events(events))
    print(f"prepare events (once)    {rate(len(events), seconds)} events")

    active = active_member_ids(events=events, cutoff=TRAIN_CUTOFF)
    later = active_member_ids(events=events, cutoff=VALIDATION_CUTOFF)
    held = np.random.default_rng(SEED).random(args.members) < VALIDATION_SHARE
    held_ids = data.members["member_id"].to_numpy()[held]
    train_ids = active[~np.isin(active, held_ids)]
    valid_ids = later[np.isin(later, held_ids)]
    train, y_train, seconds = labelled(prepared, events, train_ids, TRAIN_CUTOFF)
    print(f"encode (training set)    {rate(len(train), seconds)} sequences")
    valid, y_valid, _ = labelled(prepared, events, valid_ids, VALIDATION_CUTOFF, train.vocabulary)

    config = replace(
        SequenceModelConfig(),
        max_epochs=args.max_epochs,
        threads=args.threads,
        hidden_size=args.hidden_size,
    )
    model, seconds = timed(
        lambda: train_sequence_churn(
            train=train,
            train_labels=y_train,
            validation=valid,
            validation_labels=y_valid,
            config=config,
        )
    )
    print(
        f"training: {len(train):,} train rows (churn {y_train.mean():.1%}), "
        f"{len(valid):,} validation rows, {len(model.history)} epochs in {seconds:.1f} s, "
        f"best epoch {model.best_epoch}"
    )
    for record in model.history:
        print(
            f"  epoch {record.epoch:>2}  train {rate(len(train), record.train_seconds)}  "
            f"validation {len(valid) / record.validation_seconds:>9,.0f} /s  "
            f"loss {record.train_log_loss:.4f} / {record.validation_log_loss:.4f}"
        )

    scoring_ids = data.members["member_id"].to_numpy()
    scored, seconds = timed(
        lambda: encode_sequences(
            events=prepared, member_ids=scoring_ids, cutoff=CUTOFF, vocabulary=train.vocabulary
        )
    )
    print(f"scoring encode           {rate(len(scored), seconds)} sequences")
    margin, seconds = timed(lambda: model.predict_margin(scored))
    print(f"scoring forward          {rate(len(scored), seconds)} sequences")
    sample = scored.take(np.arange(min(ATTRIBUTION_MEMBERS, len(scored))))
    _, seconds = timed(lambda: occlusion_attribution(model=model, encoded=sample))
    print(f"occlusion attribution    {rate(len(sample), seconds)} members")

    test_ids = active_member_ids(events=events, cutoff=CUTOFF)
    test_ids = test_ids[np.isin(test_ids, held_ids)]
    y_test = churn_labels(events=events, member_ids=test_ids, cutoff=CUTOFF, horizon_days=HORIZON)
    rows = np.searchsorted(scoring_ids, test_ids)
    auc = roc_auc_score(y_test.to_numpy(), margin[rows])
    print(
        f"held-out AUC at {CUTOFF.date()} (held-out active members, n={len(test_ids):,}): {auc:.3f}"
    )


if __name__ == "__main__":
    main()
