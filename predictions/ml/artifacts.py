"""Saving and loading trained bundles as plain files with SHA-256 checksums.

A bundle is a directory: `manifest.json` (feature codes, config, calibrators, conformal
thresholds, baseline coefficients, which candidate is selected) and one XGBoost UBJSON file per
booster. No pickle: loading parses JSON and XGBoost's own format, so it cannot run code.
`save_*` returns {filename: sha256}; the registry stores it, and `load_*` verifies every file
against it before reading anything, raising CorruptArtifactError on any difference.

A churn bundle with a tree + sequence ensemble also has a `sequence/` subdirectory holding the
GRU and the stacker (`sequences.model.save_sequence_model`); its files appear in the same
checksum mapping as `sequence/<file>`, and the ensemble's calibrators and conformal
thresholds sit in the churn manifest under "ensemble". torch is imported only to load or save
such a bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import xgboost as xgb

from .calibration import Calibrator
from .conformal import MondrianBinary
from .contracts import (
    BoosterParams,
    ChurnBundle,
    ChurnCandidate,
    ChurnConfig,
    ChurnEnsemble,
    CorruptArtifactError,
    NextActionBundle,
    NextActionConfig,
    SequenceModelConfig,
)
from .scorers import BgNbdScorer, LinearScorer, TreeScorer

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
CHURN_FORMAT = "loyalty-review/churn"
NEXT_ACTION_FORMAT = "loyalty-review/next-action"
SEQUENCE_DIRECTORY = "sequence"


def save_churn_bundle(*, bundle: ChurnBundle, directory: str | Path) -> dict[str, str]:
    """Write the bundle into `directory` (created if needed); return {filename: sha256}."""
    files: dict[str, bytes] = {}
    candidates = {}
    for name, candidate in bundle.candidates.items():
        replicas = [
            {
                "scorer": _scorer_json(scorer, f"{name}_bootstrap_{i}", files),
                "calibrator": calibrator.to_json(),
            }
            for i, (scorer, calibrator) in enumerate(candidate.bootstrap)
        ]
        candidates[name] = {
            "scorer": _scorer_json(candidate.scorer, name, files),
            "calibrator": candidate.calibrator.to_json(),
            "conformal": candidate.conformal.to_json(),
            "bootstrap": replicas,
        }
    manifest = {
        "format": CHURN_FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_codes": list(bundle.feature_codes),
        "config": _config_json(bundle.config),
        "selected": bundle.selected,
        "horizon_days": bundle.horizon_days,
        "trained_cutoff": bundle.trained_cutoff,
        "training_cutoffs": list(bundle.training_cutoffs),
        "candidates": candidates,
        "ensemble": None if bundle.ensemble is None else _ensemble_json(bundle.ensemble),
    }
    sequence_checksums = {}
    if bundle.ensemble is not None:
        from .sequences.model import save_sequence_model

        sequence_checksums = save_sequence_model(
            model=bundle.ensemble.sequence_model,
            directory=Path(directory) / SEQUENCE_DIRECTORY,
            stacker=bundle.ensemble.stacker,
        )
    files[MANIFEST] = json_bytes(manifest)
    checksums = write_files(directory, files)
    for name, digest in sequence_checksums.items():
        checksums[f"{SEQUENCE_DIRECTORY}/{name}"] = digest
    return dict(sorted(checksums.items()))


def load_churn_bundle(*, directory: str | Path, checksums: dict[str, str]) -> ChurnBundle:
    """Verify every file against `checksums`, then rebuild the bundle (and its ensemble)."""
    own, sequence_checksums = _split_checksums(checksums)
    files = verified_files(directory, own)
    manifest = read_manifest(files, CHURN_FORMAT)
    ensemble_data = manifest.get("ensemble")
    if ensemble_data is not None and not sequence_checksums:
        raise CorruptArtifactError(
            f"{MANIFEST} names a sequence model, but the checksums cover no "
            f"{SEQUENCE_DIRECTORY}/ file"
        )
    if ensemble_data is None and sequence_checksums:
        raise CorruptArtifactError(
            f"the checksums cover {sorted(sequence_checksums)} in {SEQUENCE_DIRECTORY}/, "
            f"which {MANIFEST} does not name"
        )
    config = dict(manifest["config"])
    config["booster"] = BoosterParams(**config["booster"])
    config["qualifying_kinds"] = tuple(config["qualifying_kinds"])
    config["excluded_features"] = tuple(config["excluded_features"])
    config["served_candidates"] = tuple(config.get("served_candidates", ()))
    if "sequence_model" in config:
        config["sequence_model"] = SequenceModelConfig(**config["sequence_model"])
    n_jobs = config["booster"].n_jobs
    candidates = {}
    for name, data in manifest["candidates"].items():
        candidates[name] = ChurnCandidate(
            name=name,
            scorer=_scorer_from(data["scorer"], files, n_jobs),
            calibrator=Calibrator.from_json(data["calibrator"]),
            conformal=MondrianBinary.from_json(data["conformal"]),
            bootstrap=tuple(
                (_scorer_from(r["scorer"], files, n_jobs), Calibrator.from_json(r["calibrator"]))
                for r in data["bootstrap"]
            ),
        )
    return ChurnBundle(
        feature_codes=tuple(manifest["feature_codes"]),
        config=ChurnConfig(**config),
        candidates=candidates,
        selected=manifest["selected"],
        horizon_days=int(manifest["horizon_days"]),
        trained_cutoff=manifest["trained_cutoff"],
        training_cutoffs=tuple(manifest["training_cutoffs"]),
        ensemble=None
        if ensemble_data is None
        else _ensemble_from(ensemble_data, Path(directory), sequence_checksums),
    )


def _split_checksums(checksums: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The bundle's own files, and those of its sequence/ subdirectory (names without it)."""
    own, sequence = {}, {}
    for name, digest in checksums.items():
        head, _, rest = name.partition("/")
        if not rest:
            own[name] = digest
        elif head == SEQUENCE_DIRECTORY and "/" not in rest:
            sequence[rest] = digest
        else:
            raise CorruptArtifactError(f"{name!r} is not a plain file name (nor sequence/<file>)")
    return own, sequence


def _ensemble_json(ensemble: ChurnEnsemble) -> dict[str, Any]:
    return {
        "directory": SEQUENCE_DIRECTORY,
        "calibrator": ensemble.calibrator.to_json(),
        "conformal": ensemble.conformal.to_json(),
        "bootstrap_calibrators": [c.to_json() for c in ensemble.bootstrap_calibrators],
        "sequence_calibrator": ensemble.sequence_calibrator.to_json(),
        "sequence_conformal": ensemble.sequence_conformal.to_json(),
        "lookback_days": ensemble.lookback_days,
        "selected": ensemble.selected,
    }


def _ensemble_from(
    data: dict[str, Any], directory: Path, checksums: dict[str, str]
) -> ChurnEnsemble:
    from .sequences.model import load_sequence_model

    loaded = load_sequence_model(directory=directory / SEQUENCE_DIRECTORY, checksums=checksums)
    if loaded.stacker is None:
        raise CorruptArtifactError(f"{SEQUENCE_DIRECTORY}/{MANIFEST} holds no stacker")
    try:
        return ChurnEnsemble(
            sequence_model=loaded.model,
            stacker=loaded.stacker,
            calibrator=Calibrator.from_json(data["calibrator"]),
            conformal=MondrianBinary.from_json(data["conformal"]),
            bootstrap_calibrators=tuple(
                Calibrator.from_json(c) for c in data["bootstrap_calibrators"]
            ),
            sequence_calibrator=Calibrator.from_json(data["sequence_calibrator"]),
            sequence_conformal=MondrianBinary.from_json(data["sequence_conformal"]),
            lookback_days=int(data["lookback_days"]),
            selected=bool(data["selected"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptArtifactError(f"the ensemble in {MANIFEST} is unusable: {error}") from error


def save_next_action_bundle(*, bundle: NextActionBundle, directory: str | Path) -> dict[str, str]:
    """Write the bundle into `directory` (created if needed); return {filename: sha256}."""
    files = {"next_action.ubj": bytes(bundle.booster.save_raw(raw_format="ubj"))}
    manifest = {
        "format": NEXT_ACTION_FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_codes": list(bundle.feature_codes),
        "action_codes": list(bundle.action_codes),
        "trained_classes": list(bundle.trained_classes),
        "set_threshold": bundle.set_threshold,
        "booster": "next_action.ubj",
        "config": _config_json(bundle.config),
    }
    files[MANIFEST] = json_bytes(manifest)
    return write_files(directory, files)


def load_next_action_bundle(
    *, directory: str | Path, checksums: dict[str, str]
) -> NextActionBundle:
    """Verify every file against `checksums`, then rebuild the bundle."""
    files = verified_files(directory, checksums)
    manifest = read_manifest(files, NEXT_ACTION_FORMAT)
    config = dict(manifest["config"])
    config["booster"] = BoosterParams(**config["booster"])
    return NextActionBundle(
        feature_codes=tuple(manifest["feature_codes"]),
        action_codes=tuple(manifest["action_codes"]),
        trained_classes=tuple(bool(v) for v in manifest["trained_classes"]),
        booster=_booster(files, manifest["booster"], config["booster"].n_jobs),
        set_threshold=float(manifest["set_threshold"]),
        config=NextActionConfig(**config),
    )


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _scorer_json(scorer: Any, stem: str, files: dict[str, bytes]) -> dict[str, Any]:
    if isinstance(scorer, TreeScorer):
        filename = f"{stem}.ubj"
        files[filename] = bytes(scorer.booster.save_raw(raw_format="ubj"))
        return {"kind": scorer.kind, "file": filename}
    if isinstance(scorer, LinearScorer | BgNbdScorer):
        return {"kind": scorer.kind, **scorer.to_json()}
    raise TypeError(f"cannot save a scorer of type {type(scorer).__name__}")


def _scorer_from(data: dict[str, Any], files: dict[str, bytes], n_jobs: int) -> Any:
    fields = {key: value for key, value in data.items() if key != "kind"}
    if data["kind"] == TreeScorer.kind:
        return TreeScorer(_booster(files, fields["file"], n_jobs))
    if data["kind"] == LinearScorer.kind:
        return LinearScorer.from_json(fields)
    if data["kind"] == BgNbdScorer.kind:
        return BgNbdScorer.from_json(fields)
    raise CorruptArtifactError(f"unknown scorer kind {data['kind']!r} in the manifest")


def _booster(files: dict[str, bytes], filename: str, n_jobs: int) -> xgb.Booster:
    if filename not in files:
        raise CorruptArtifactError(f"{filename} is named by the manifest but not checksummed")
    booster = xgb.Booster()
    booster.load_model(bytearray(files[filename]))
    # Threads are a runtime setting, not part of the saved model: restore the bundle's own.
    booster.set_param({"nthread": n_jobs or os.cpu_count() or 1})
    return booster


def _config_json(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")


def write_files(directory: str | Path, files: dict[str, bytes]) -> dict[str, str]:
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: sha256_of(data) for name, data in sorted(files.items())}


def verified_files(directory: str | Path, checksums: dict[str, str]) -> dict[str, bytes]:
    """Read every checksummed file once and compare; the bytes read are the bytes used."""
    root = Path(directory)
    if MANIFEST not in checksums:
        raise CorruptArtifactError(f"the checksums do not cover {MANIFEST}")
    files = {}
    for name, expected in checksums.items():
        if Path(name).name != name or name in ("", ".", ".."):
            raise CorruptArtifactError(f"{name!r} is not a plain file name")
        path = root / name
        if not path.is_file():
            raise CorruptArtifactError(f"{name} is missing from {root}")
        data = path.read_bytes()
        actual = sha256_of(data)
        if actual != expected:
            raise CorruptArtifactError(
                f"{name} has sha256 {actual}, expected {expected}: the file was changed"
            )
        files[name] = data
    return files


def read_manifest(files: dict[str, bytes], expected_format: str) -> dict[str, Any]:
    try:
        manifest = json.loads(files[MANIFEST])
    except ValueError as error:
        raise CorruptArtifactError(f"{MANIFEST} is not valid JSON: {error}") from error
    if manifest.get("format") != expected_format:
        raise CorruptArtifactError(
            f"{MANIFEST} holds {manifest.get('format')!r}, expected {expected_format!r}"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptArtifactError(
            f"unsupported format version {manifest.get('format_version')!r} "
            f"(this code reads {FORMAT_VERSION})"
        )
    return manifest
