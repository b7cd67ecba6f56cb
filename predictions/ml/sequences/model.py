"""A small GRU over members' event sequences for churn, trained deterministically in PyTorch.

Padding never enters the GRU (rows are packed to their own length), so a member's state depends
on their events alone and an event that occlusion masks out is truly absent. Training stops
early on the time-later validation split, as the trees do, and keeps the best epoch's weights.
The margin is raw: calibrate the stacked ensemble margin (`calibration`), not `predict_proba`.
A run is seeded inside `torch.random.fork_rng` with deterministic algorithms on
`config.threads` threads (parallelism comes from Celery workers) and restores the caller's
settings, so the same data and config give bit-identical weights. Artifacts follow `artifacts`
(JSON and raw float32 tensors, checksummed, no pickle); keep them in their own directory, since
the churn bundle's manifest has the same file name.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from predictions.ml import artifacts
from predictions.ml.calibration import log_loss_of
from predictions.ml.contracts import CorruptArtifactError, SequenceModelConfig, SingleClassError
from predictions.ml.ensemble import Stacker
from predictions.ml.progress import Progress, ProgressCallback
from predictions.ml.sequences.encoding import NUMERIC_CHANNELS, EncodedSequences, SequenceVocabulary

SEQUENCE_FORMAT = "loyalty-review/sequence-churn"
WEIGHTS_FILE = "sequence_weights.bin"
WEIGHTS_DTYPE = "<f4"
PREDICT_BATCH = 2048
# The one stage `train_sequence_churn` reports, an epoch per step.
EPOCHS = "epochs"
# Numeric channels whose spread on the training events is below this are only centred.
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class EpochRecord:
    """One training epoch: mean training loss (weighted, over its batches), validation log loss,
    and the seconds of the training pass and of the validation pass."""

    epoch: int
    train_log_loss: float
    validation_log_loss: float
    train_seconds: float
    validation_seconds: float


class ChurnGRU(nn.Module):
    """Embeddings + numeric channels -> one GRU layer -> linear head on the last real state."""

    def __init__(self, *, vocabulary: SequenceVocabulary, config: SequenceModelConfig):
        super().__init__()
        self.kind = nn.Embedding(vocabulary.kind_codes, config.kind_dim, padding_idx=0)
        self.category = nn.Embedding(vocabulary.category_codes, config.category_dim, padding_idx=0)
        self.channel = nn.Embedding(vocabulary.channel_codes, config.channel_dim, padding_idx=0)
        width = config.kind_dim + config.category_dim + config.channel_dim + len(NUMERIC_CHANNELS)
        self.gru = nn.GRU(width, config.hidden_size, num_layers=1, batch_first=True)
        self.head = nn.Linear(config.hidden_size, 1)
        self.register_buffer("numeric_mean", torch.zeros(len(NUMERIC_CHANNELS)))
        self.register_buffer("numeric_scale", torch.ones(len(NUMERIC_CHANNELS)))

    def forward(
        self,
        kind: torch.Tensor,
        category: torch.Tensor,
        channel: torch.Tensor,
        numeric: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        steps = self.steps(kind, category, channel, numeric, mask)
        return self.head(self._last_state(steps, mask)).squeeze(-1)

    def steps(
        self,
        kind: torch.Tensor,
        category: torch.Tensor,
        channel: torch.Tensor,
        numeric: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """The GRU's input per position: embeddings and standardized numeric channels (all
        zero on padding: the embeddings' padding rows are zero and the numeric part masked)."""
        standardized = (numeric - self.numeric_mean) / self.numeric_scale
        return torch.cat(
            [
                self.kind(kind),
                self.category(category),
                self.channel(channel),
                standardized * mask.unsqueeze(-1),
            ],
            dim=-1,
        )

    def _last_state(self, steps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """GRU state after each row's last real event, as if padding were not there.

        Full rows run through the fused GRU as they are. The others have their real events
        moved to the front (in order) and are packed to their own lengths, which is exact but
        several times slower to train on CPU; an empty row runs one all-zero step.
        """
        lengths = mask.sum(dim=1)
        full = lengths == mask.shape[1]
        if bool(full.all()):
            return self.gru(steps)[1][0]
        out = steps.new_zeros(len(steps), self.gru.hidden_size)
        if bool(full.any()):
            rows = full.nonzero().squeeze(1)
            out = out.index_copy(0, rows, self.gru(steps[rows])[1][0])
        rows = (~full).nonzero().squeeze(1)
        partial, partial_mask = steps[rows], mask[rows]
        order = torch.argsort((~partial_mask).to(torch.int8), dim=1, stable=True)
        partial = partial.gather(1, order.unsqueeze(-1).expand_as(partial))
        packed = pack_padded_sequence(
            partial, lengths[rows].clamp(min=1), batch_first=True, enforce_sorted=False
        )
        return out.index_copy(0, rows, self.gru(packed)[1][0])


@dataclass(frozen=True)
class SequenceChurnModel:
    """A fitted sequence churn model: the network, its vocabulary and how training went."""

    network: ChurnGRU
    vocabulary: SequenceVocabulary
    config: SequenceModelConfig
    length: int
    best_epoch: int
    history: tuple[EpochRecord, ...] = field(default=())

    def predict_margin(
        self, encoded: EncodedSequences, *, batch_size: int = PREDICT_BATCH
    ) -> np.ndarray:
        """Log-odds of churn per row of `encoded` (float64)."""
        self._check(encoded)
        with _deterministic(self.config.threads):
            return _margins(self.network, encoded, batch_size)

    def predict_proba(
        self, encoded: EncodedSequences, *, batch_size: int = PREDICT_BATCH
    ) -> np.ndarray:
        """Uncalibrated P(churn): the sigmoid of `predict_margin`."""
        margin = self.predict_margin(encoded, batch_size=batch_size)
        return 0.5 * (1.0 + np.tanh(0.5 * margin))

    def _check(self, encoded: EncodedSequences) -> None:
        if encoded.vocabulary != self.vocabulary:
            raise ValueError("the sequences were encoded with another vocabulary than the model's")


@dataclass(frozen=True)
class SequenceBundle:
    """What `load_sequence_model` returns: the model and, when saved with it, the stacker."""

    model: SequenceChurnModel
    stacker: Stacker | None


def train_sequence_churn(
    *,
    train: EncodedSequences,
    train_labels: np.ndarray,
    validation: EncodedSequences,
    validation_labels: np.ndarray,
    config: SequenceModelConfig | None = None,
    train_weights: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> SequenceChurnModel:
    """Fit the GRU on `train`, early-stopped on `validation`'s log loss.

    `validation` should be time-later than `train` (and member-disjoint, as `churn.rows` makes
    it), and share its vocabulary. Raises SingleClassError when either split holds one class.
    `progress` hears each epoch end (of at most `config.max_epochs`; early stopping ends
    sooner, at 1.0).
    """
    config = config or SequenceModelConfig()
    y_train = _labels("train", train, train_labels)
    y_valid = _labels("validation", validation, validation_labels)
    if validation.vocabulary != train.vocabulary or validation.length != train.length:
        raise ValueError("validation must be encoded with the training vocabulary and length")
    weights = np.ones(len(y_train)) if train_weights is None else np.asarray(train_weights)
    if weights.shape != y_train.shape:
        raise ValueError(f"train_weights has shape {weights.shape}, expected {y_train.shape}")
    with _deterministic(config.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = ChurnGRU(vocabulary=train.vocabulary, config=config)
        _set_numeric_scaling(network, train)
        tracker = Progress(progress, {EPOCHS: 1.0})
        tracker.stage(EPOCHS, total=config.max_epochs)
        history, best_epoch = _fit(
            network, train, y_train, weights, validation, y_valid, config, tracker
        )
        tracker.finish(detail=f"best epoch {best_epoch}")
    return SequenceChurnModel(
        network=network,
        vocabulary=train.vocabulary,
        config=config,
        length=train.length,
        best_epoch=best_epoch,
        history=tuple(history),
    )


def save_sequence_model(
    *, model: SequenceChurnModel, directory: str | Path, stacker: Stacker | None = None
) -> dict[str, str]:
    """Write the model (and the stacker, if given) into `directory`; return {filename: sha256}."""
    state = {name: tensor.detach().cpu() for name, tensor in model.network.state_dict().items()}
    layout, chunks, offset = [], [], 0
    for name in sorted(state):
        data = state[name].numpy().astype(WEIGHTS_DTYPE).tobytes()
        layout.append({"name": name, "shape": list(state[name].shape), "offset": offset})
        chunks.append(data)
        offset += len(data)
    manifest = {
        "format": SEQUENCE_FORMAT,
        "format_version": artifacts.FORMAT_VERSION,
        "config": asdict(model.config),
        "vocabulary": model.vocabulary.to_json(),
        "numeric_channels": list(NUMERIC_CHANNELS),
        "length": model.length,
        "best_epoch": model.best_epoch,
        "history": [asdict(record) for record in model.history],
        "weights": {"file": WEIGHTS_FILE, "dtype": WEIGHTS_DTYPE, "tensors": layout},
        "stacker": None if stacker is None else stacker.to_json(),
    }
    files = {artifacts.MANIFEST: artifacts.json_bytes(manifest), WEIGHTS_FILE: b"".join(chunks)}
    return artifacts.write_files(directory, files)


def load_sequence_model(*, directory: str | Path, checksums: dict[str, str]) -> SequenceBundle:
    """Verify every file against `checksums`, then rebuild the model (and stacker)."""
    files = artifacts.verified_files(directory, checksums)
    manifest = artifacts.read_manifest(files, SEQUENCE_FORMAT)
    try:
        config = SequenceModelConfig(**manifest["config"])
        vocabulary = SequenceVocabulary.from_json(manifest["vocabulary"])
        if tuple(manifest["numeric_channels"]) != NUMERIC_CHANNELS:
            raise CorruptArtifactError(
                f"numeric channels {manifest['numeric_channels']} differ from this code's "
                f"{list(NUMERIC_CHANNELS)}"
            )
        network = ChurnGRU(vocabulary=vocabulary, config=config)
        network.load_state_dict(_state_from(manifest["weights"], files))
        stacker = manifest["stacker"]
        return SequenceBundle(
            model=SequenceChurnModel(
                network=network.eval(),
                vocabulary=vocabulary,
                config=config,
                length=int(manifest["length"]),
                best_epoch=int(manifest["best_epoch"]),
                history=tuple(EpochRecord(**record) for record in manifest["history"]),
            ),
            stacker=None if stacker is None else Stacker.from_json(stacker),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CorruptArtifactError(f"the sequence model manifest is unusable: {error}") from error


def _state_from(weights: dict[str, Any], files: dict[str, bytes]) -> dict[str, torch.Tensor]:
    if weights["file"] not in files:
        raise CorruptArtifactError(
            f"{weights['file']} is named by the manifest but not checksummed"
        )
    if weights["dtype"] != WEIGHTS_DTYPE:
        raise CorruptArtifactError(f"weights of dtype {weights['dtype']!r}, expected float32")
    blob = files[weights["file"]]
    state = {}
    for tensor in weights["tensors"]:
        count = int(np.prod(tensor["shape"], dtype="int64"))
        values = np.frombuffer(blob, dtype=WEIGHTS_DTYPE, count=count, offset=tensor["offset"])
        state[tensor["name"]] = torch.from_numpy(values.astype("float32").reshape(tensor["shape"]))
    return state


@contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Deterministic kernels on `threads` intra-op threads, restoring the caller's settings."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)


def _labels(split: str, encoded: EncodedSequences, labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels, dtype="float64")
    if y.shape != (len(encoded),):
        raise ValueError(f"{split} labels have shape {y.shape}, expected ({len(encoded)},)")
    present = np.unique(y)
    if len(present) < 2:
        label = "churn" if len(present) and present[0] == 1 else "stay"
        raise SingleClassError(split=split, label=label, rows=len(y))
    return y


def _tensors(encoded: EncodedSequences, rows: slice | np.ndarray) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(np.ascontiguousarray(encoded.kind[rows])),
        torch.from_numpy(np.ascontiguousarray(encoded.category[rows])),
        torch.from_numpy(np.ascontiguousarray(encoded.channel[rows])),
        torch.from_numpy(np.ascontiguousarray(encoded.numeric[rows])),
        torch.from_numpy(np.ascontiguousarray(encoded.mask[rows])),
    )


def _set_numeric_scaling(network: ChurnGRU, train: EncodedSequences) -> None:
    """Mean and spread of each numeric channel over the training set's real events."""
    values = train.numeric[train.mask].astype("float64")
    if len(values) == 0:
        return
    scale = values.std(axis=0)
    network.numeric_mean.copy_(torch.from_numpy(values.mean(axis=0)).float())
    network.numeric_scale.copy_(torch.from_numpy(np.where(scale > MIN_SCALE, scale, 1.0)).float())


def _fit(
    network: ChurnGRU,
    train: EncodedSequences,
    y_train: np.ndarray,
    weights: np.ndarray,
    validation: EncodedSequences,
    y_valid: np.ndarray,
    config: SequenceModelConfig,
    progress: Progress,
) -> tuple[list[EpochRecord], int]:
    """Mini-batch Adam epochs with early stopping; leaves the best epoch's weights in place."""
    optimizer = torch.optim.Adam(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    targets = torch.from_numpy(y_train).float()
    row_weights = torch.from_numpy(weights / weights.mean()).float()
    history: list[EpochRecord] = []
    best_loss, best_epoch, best_state = np.inf, 0, copy.deepcopy(network.state_dict())
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        network.train()
        order = torch.randperm(len(y_train)).numpy()
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = np.sort(order[start : start + config.batch_size])
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(
                network(*_tensors(train, rows)), targets[rows], weight=row_weights[rows]
            )
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), config.gradient_clip)
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        trained = time.perf_counter()
        valid_loss = _validation_loss(network, validation, y_valid)
        history.append(
            EpochRecord(
                epoch=epoch,
                train_log_loss=total / len(order),
                validation_log_loss=valid_loss,
                train_seconds=trained - started,
                validation_seconds=time.perf_counter() - trained,
            )
        )
        progress.step(detail=f"epoch {epoch}: validation log loss {valid_loss:.4f}")
        if valid_loss < best_loss:
            best_loss, best_epoch = valid_loss, epoch
            best_state = copy.deepcopy(network.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    network.load_state_dict(best_state)
    network.eval()
    return history, best_epoch


def _validation_loss(network: ChurnGRU, validation: EncodedSequences, y: np.ndarray) -> float:
    margin = _margins(network, validation, PREDICT_BATCH)
    return log_loss_of(labels=y, probability=0.5 * (1.0 + np.tanh(0.5 * margin)))


def _margins(network: ChurnGRU, encoded: EncodedSequences, batch_size: int) -> np.ndarray:
    network.eval()
    out = np.empty(len(encoded))
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            rows = slice(start, start + batch_size)
            out[rows] = network(*_tensors(encoded, rows)).double().numpy()
    return out
