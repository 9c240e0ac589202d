"""The model registry: ``<registry>/<name>/<version>/`` bundles that check themselves on load.

A bundle holds the booster in LightGBM's text format, the calibrator and the baseline (joblib),
``metadata.json`` (feature schema with categories, config, snapshot dates, data fingerprint,
metrics, library versions, created-at) and ``manifest.json`` with the SHA-256 of every file.
Loading verifies every hash before anything pickled is read. ``<name>/latest`` holds the newest
version's name. Bundles are written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
from sklearn.pipeline import Pipeline

from churnguard.errors import ModelRegistryError
from churnguard.features import FeatureSpec
from churnguard.io import atomic_path, sha256_file
from churnguard.model import ChurnModel, TrainResult

BOOSTER = "booster.txt"
CALIBRATOR = "calibrator.joblib"
BASELINE = "baseline.joblib"
METADATA = "metadata.json"
MANIFEST = "manifest.json"
LIBRARIES = (
    "churnguard",
    "lightgbm",
    "scikit-learn",
    "pandas",
    "numpy",
    "duckdb",
    "ibis-framework",
)


def save_model(
    result: TrainResult,
    *,
    registry: Path,
    name: str,
    metadata: dict[str, Any],
    files: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Write a bundle for ``result`` and point ``<name>/latest`` at it; return its folder.

    ``files`` maps extra file names (e.g. ``report.html``) to text written into the bundle and
    covered by its manifest.
    """
    now = now or dt.datetime.now(dt.UTC)
    home = Path(registry) / name
    home.mkdir(parents=True, exist_ok=True)
    version = now.strftime("%Y%m%dT%H%M%SZ")
    suffix = 1
    while (home / version).exists():
        suffix += 1
        version = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"
    staging = home / f".{version}.{os.getpid()}.tmp"
    staging.mkdir()
    try:
        model = result.model
        model.booster.save_model(staging / BOOSTER, num_iteration=result.best_iteration)
        joblib.dump(model.calibrator, staging / CALIBRATOR)
        joblib.dump(result.baseline, staging / BASELINE)
        full = {
            **metadata,
            "name": name,
            "version": version,
            "created_at": now.isoformat(),
            "features": [asdict(s) for s in model.features],
            "categories": model.categories,
            "calibration": model.calibrator.method,
            "best_iteration": result.best_iteration,
            "libraries": {lib: _installed(lib) for lib in LIBRARIES},
        }
        (staging / METADATA).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
        for file_name, text in (files or {}).items():
            (staging / file_name).write_text(text, encoding="utf-8")
        files = sorted(p.name for p in staging.iterdir())
        manifest = {"files": {f: sha256_file(staging / f) for f in files}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(staging, home / version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with atomic_path(home / "latest") as tmp:
        tmp.write_text(version + "\n")
    return home / version


def resolve(registry: Path, name: str, version: str = "latest") -> Path:
    """The folder of ``name``'s ``version`` (``latest`` follows the pointer)."""
    home = Path(registry) / name
    if version == "latest":
        pointer = home / "latest"
        if not pointer.exists():
            raise ModelRegistryError(f"{home}: no model saved yet (no 'latest' pointer)")
        version = pointer.read_text().strip()
    folder = home / version
    if not folder.is_dir():
        raise ModelRegistryError(f"{folder}: no such model version")
    return folder


def load_model(folder: Path) -> tuple[ChurnModel, dict[str, Any]]:
    """Verify every file against the manifest, then load the model and its metadata.

    Raises
    ------
    ModelRegistryError
        A file is missing, extra or changed since it was saved.
    """
    folder = Path(folder)
    verify(folder)
    metadata = json.loads((folder / METADATA).read_text())
    booster = lgb.Booster(model_file=str(folder / BOOSTER))
    calibrator = joblib.load(folder / CALIBRATOR)
    features = [FeatureSpec(**spec) for spec in metadata["features"]]
    return ChurnModel(booster, calibrator, features, metadata["categories"]), metadata


def load_baseline(folder: Path) -> Pipeline:
    """The logistic baseline saved beside the model, loaded after the manifest check."""
    verify(Path(folder))
    return joblib.load(Path(folder) / BASELINE)


def check_schema(model: ChurnModel, available: list[FeatureSpec], *, where: str) -> None:
    """Refuse data whose features do not match the model's schema (name and kind).

    Raises
    ------
    ModelRegistryError
        A feature the model needs is absent from ``available``, or has another kind.
    """
    kinds = {s.name: s.kind for s in available}
    missing = [s.name for s in model.features if s.name not in kinds]
    if missing:
        raise ModelRegistryError(
            f"{where}: the data lacks {len(missing)} feature(s) the model was trained on "
            f"({', '.join(missing[:5])}); score data with the same tables and event types, "
            "or retrain"
        )
    changed = [s.name for s in model.features if kinds[s.name] != s.kind]
    if changed:
        raise ModelRegistryError(
            f"{where}: feature(s) {', '.join(changed[:5])} changed kind (numeric/categorical) "
            "since training; retrain the model"
        )


def verify(folder: Path) -> None:
    """Check the files of a bundle against the SHA-256 recorded in its manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        raise ModelRegistryError(f"{folder}: missing or unreadable {MANIFEST}") from None
    present = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    if present != sorted(manifest):
        raise ModelRegistryError(
            f"{folder}: files {present} do not match the manifest {sorted(manifest)}"
        )
    for name, digest in manifest.items():
        if sha256_file(folder / name) != digest:
            raise ModelRegistryError(
                f"{folder / name}: sha256 differs from the one recorded at save time; "
                "the file was changed, refusing to load it"
            )


def list_versions(registry: Path, name: str) -> list[str]:
    """Saved versions of ``name``, oldest first."""
    home = Path(registry) / name
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if p.is_dir() and not p.name.startswith("."))


def _installed(library: str) -> str:
    try:
        return package_version(library)
    except PackageNotFoundError:
        return "not installed"
