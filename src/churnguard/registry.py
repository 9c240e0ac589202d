"""The model registry: ``<registry>/<name>/<version>/`` bundles that check themselves on load.

A bundle holds the booster in LightGBM's text format, the calibrator and the baseline as JSON
numbers, ``metadata.json`` (feature schema with categories, config, snapshot dates, data
fingerprint, metrics, library versions, created-at) and ``manifest.json`` with the SHA-256 of
every file. Nothing in a bundle is ever unpickled. ``<name>/latest`` holds the newest version's
name and ``<name>/champion`` the name of the one in service; ``<name>/promotions.jsonl``
records every change of champion (when, which version, the one before, who and why). The first
model saved becomes champion; later ones stay challengers until promoted (by hand, or by
training with ``[model] auto_promote``). Bundles are written to a temporary folder and renamed
into place; pointers and the log are replaced whole.

The hashes catch accidents (a file changed, cut short or swapped); they do not stop someone
who rewrites ``manifest.json`` too. With :data:`SIGNING_KEY` set in the environment, training
writes an HMAC-SHA256 of the manifest (``manifest.sig``) and loading refuses a bundle whose
signature is missing or wrong, so only a holder of the key can produce a bundle that loads.
Names and versions are single path components of safe characters; a version named by
``latest`` or by the user always resolves inside the registry.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import socket
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightgbm as lgb

from churnguard.errors import ModelRegistryError
from churnguard.features import FeatureSpec
from churnguard.io import atomic_path, is_safe_name, printable, sha256_file
from churnguard.model import Baseline, Calibrator, ChurnModel, TrainResult

if TYPE_CHECKING:
    from churnguard.config import ModelConfig

BOOSTER = "booster.txt"
CALIBRATOR = "calibrator.json"
BASELINE = "baseline.json"
METADATA = "metadata.json"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
LATEST = "latest"
CHAMPION = "champion"
PROMOTIONS = "promotions.jsonl"
#: Environment variable holding the key bundles are signed and checked with.
SIGNING_KEY = "CHURNGUARD_SIGNING_KEY"
#: What bundles saved before JSON calibrators held; they are refused, never loaded.
_PICKLED = ("calibrator.joblib", "baseline.joblib")
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
    home = model_home(registry, name)
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
        _write_json(staging / CALIBRATOR, model.calibrator.to_dict())
        _write_json(staging / BASELINE, result.baseline.to_dict())
        full = {
            **metadata,
            "name": name,
            "version": version,
            "created_at": now.isoformat(),
            "features": [asdict(s) for s in model.features],
            "categories": model.categories,
            "calibration": model.calibrator.method,
            "baseline_weight": model.calibrator.baseline_weight,
            "best_iteration": result.best_iteration,
            "libraries": {lib: _installed(lib) for lib in LIBRARIES},
        }
        (staging / METADATA).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
        for file_name, text in (files or {}).items():
            (staging / file_name).write_text(text, encoding="utf-8")
        files = sorted(p.name for p in staging.iterdir())
        manifest = {"files": {f: sha256_file(staging / f) for f in files}}
        _write_json(staging / MANIFEST, manifest)
        key = signing_key()
        if key:
            (staging / SIGNATURE).write_text(_signature(key, (staging / MANIFEST).read_bytes()))
        os.replace(staging, home / version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    previous = home / LATEST
    if not (home / CHAMPION).exists():
        if previous.is_file():  # saved before promotion existed: the model that served so far
            _record(home, _follow(previous).name, "adopted", "served as latest before promotion")
        else:
            _record(home, version, "first", "the first model trained")
    _point(home / LATEST, version)
    return home / version


def model_home(registry: Path | str, name: str) -> Path:
    """``<registry>/<name>``, refusing a name that is not one safe path component."""
    if not is_safe_name(name):
        raise ModelRegistryError(
            f"model name {printable(repr(name))}: expected letters, digits, '.', '_' or '-' "
            "(not starting with '.'), one folder name"
        )
    return Path(registry) / name


def resolve(registry: Path | str, name: str, version: str = LATEST) -> Path:
    """The folder of ``name``'s ``version`` (``latest`` and ``champion`` follow their pointers;
    a registry saved before promotion existed serves its latest), always inside the registry:
    a version, named or read from a pointer, is one safe folder name."""
    home = model_home(registry, name)
    if version == CHAMPION and (home / CHAMPION).exists():
        return _follow(home / CHAMPION)
    if version in (LATEST, CHAMPION):
        return _follow(home / LATEST)
    if not is_safe_name(version):
        raise ModelRegistryError(
            f"model version {printable(repr(version))}: expected a version name such as "
            "20260101T000000Z, champion or latest; give a bundle folder as a path "
            "(./models/churn/V)"
        )
    folder = home / version
    if not folder.is_dir():
        raise ModelRegistryError(f"{folder}: no such model version")
    return folder


def find_model(model: str | Path | None, settings: ModelConfig) -> Path:
    """The bundle folder a user means by ``model``.

    A :class:`~pathlib.Path`, or text holding a path separator, is a folder the user names
    (a ``latest`` or ``champion`` pointer file is followed within its own folder); other text
    is a version of the configured model, ``champion`` or ``latest``; ``None`` is
    ``[model] version``.
    """
    if model is None:
        model = settings.version
    text = str(model)
    if isinstance(model, Path) or "/" in text or os.sep in text:
        return _bundle_folder(Path(model))
    return resolve(settings.registry, settings.name, text)


def _bundle_folder(path: Path) -> Path:
    """A bundle folder named by the user, or the version a pointer file names."""
    if path.is_file() and path.name in (LATEST, CHAMPION):
        return _follow(path)
    if not path.is_dir():
        raise ModelRegistryError(f"{path}: no such model folder")
    return path


def _follow(pointer: Path) -> Path:
    """The version a pointer names, in the pointer's own folder."""
    if not pointer.is_file():
        raise ModelRegistryError(
            f"{pointer.parent}: no model saved yet (no {pointer.name!r} pointer)"
        )
    version = pointer.read_text("utf-8", errors="replace").strip()
    if not is_safe_name(version):
        raise ModelRegistryError(
            f"{pointer}: expected one version name, got {printable(repr(version[:60]))}"
        )
    folder = pointer.parent / version
    if not folder.is_dir():
        raise ModelRegistryError(f"{folder}: no such model version (named by {pointer})")
    return folder


def load_model(folder: Path | str) -> tuple[ChurnModel, dict[str, Any]]:
    """Verify the bundle (hashes, and the signature when a key is set), then build the model
    from the bytes that were verified. Nothing is unpickled.

    ``folder`` may also be a ``latest`` pointer file, or a version's folder.

    Raises
    ------
    ModelRegistryError
        A file is missing, extra, changed since it was saved, or cannot be read as what it
        should hold; the signature is missing or wrong.
    """
    folder = _bundle_folder(Path(folder))
    contents = verify(folder)
    metadata = _metadata(folder, contents)
    try:
        features = [FeatureSpec(**spec) for spec in metadata["features"]]
        categories = {str(k): [str(c) for c in v] for k, v in metadata["categories"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelRegistryError(
            f"{folder / METADATA}: cannot be read as a model's metadata: {printable(exc)}"
        ) from None
    calibrator = _parsed(
        folder, CALIBRATOR, contents, lambda b: Calibrator.from_dict(json.loads(b))
    )
    names = [s.name for s in features]
    booster = _parsed(folder, BOOSTER, contents, lambda b: read_booster(b.decode(), names))
    baseline = None
    if calibrator.baseline_weight:  # the baseline is part of the model's probabilities
        baseline = _parsed(folder, BASELINE, contents, lambda b: Baseline.from_dict(json.loads(b)))
    return ChurnModel(booster, calibrator, features, categories, baseline), metadata


def read_metadata(folder: Path) -> dict[str, Any]:
    """A bundle's metadata, after the same checks as :func:`load_model`.

    Raises
    ------
    ModelRegistryError
        As :func:`load_model`.
    """
    return _metadata(Path(folder), verify(Path(folder)))


def _metadata(folder: Path, contents: dict[str, bytes]) -> dict[str, Any]:
    metadata = _parsed(folder, METADATA, contents, json.loads)
    if not isinstance(metadata, dict):
        raise ModelRegistryError(f"{folder / METADATA}: expected a JSON object")
    return metadata


def load_baseline(folder: Path) -> Baseline:
    """The logistic baseline saved beside the model, built from the verified JSON."""
    contents = verify(Path(folder))
    return _parsed(folder, BASELINE, contents, lambda b: Baseline.from_dict(json.loads(b)))


def _parsed(folder: Path, name: str, contents: dict[str, bytes], parse: Any) -> Any:
    """``parse(contents[name])``, any failure one line naming the file."""
    try:
        return parse(contents[name])
    except (ValueError, KeyError, TypeError, AttributeError, lgb.basic.LightGBMError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelRegistryError(
            f"{folder / name}: damaged, cannot be read: {printable(detail)[:200]}"
        ) from None


#: The ``Tree=<i>`` line opening each tree, the header's list of tree sizes, the line after the
#: last tree, and the Python package's line of pandas categories.
_TREE = re.compile(r"^Tree=(\d+)\n", re.MULTILINE)
_KEY = re.compile(r"[a-z_]+")
_END = "\nend of trees\n"
_PANDAS = "pandas_categorical:"


def read_booster(text: str, features: list[str]) -> lgb.Booster:
    """A LightGBM booster from its text, checked first so a damaged text is refused in Python.

    LightGBM parses trees in parallel when the text lists their sizes, and a malformed tree
    there aborts the process; without the sizes it parses them one by one and raises. So the
    sizes are checked here, removed, and the structure of every tree (array lengths, child and
    feature indices, category bitsets) is checked before LightGBM sees it. Only what prediction
    reads is handed over: header, trees and the pandas categories.

    Raises
    ------
    ValueError
        The text is not a booster over ``features``, or a tree is malformed.
    """
    starts = [m.start() for m in _TREE.finditer(text)]
    end = text.find(_END)
    if not starts or end < starts[-1]:
        raise ValueError("no trees, or no 'end of trees' after them")
    head = text[: starts[0]].splitlines()
    if not head or head[0] != "tree":
        raise ValueError("the text does not start as a LightGBM model")
    header = _fields(head[1:], "the header")
    if header.get("max_feature_idx") != str(len(features) - 1):
        raise ValueError(f"expected a booster over {len(features)} features")
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], end + 1], strict=True)]
    sizes = header.pop("tree_sizes", "").split()
    if sizes != [str(len(block.encode())) for block in blocks]:
        raise ValueError("the tree sizes in the header do not match the trees")
    # LightGBM is handed a text rebuilt from what was checked: the header without the tree
    # sizes (so trees are parsed one by one, and errors raise), each tree's fields, and the
    # pandas categories. The training parameters after the trees are left out: LightGBM's
    # parser of them crashes on some damage, and prediction does not read them.
    trees = [_check_tree(block, i, len(features)) for i, block in enumerate(blocks)]
    categories = [line for line in text[end:].splitlines() if line.startswith(_PANDAS)]
    kept = "".join(
        [
            "tree\n",
            *(f"{key}={value}\n" for key, value in header.items()),
            "\n",
            *(
                f"Tree={i}\n" + "".join(f"{k}={v}\n" for k, v in tree.items()) + "\n\n"
                for i, tree in enumerate(trees)
            ),
            _END.lstrip("\n"),
            *(line + "\n" for line in categories[-1:]),
        ]
    )
    booster = lgb.Booster(model_str=kept)
    # LightGBM writes a space in a feature name as an underscore.
    names = [name.replace(" ", "_") for name in features]
    if booster.num_trees() != len(blocks) or booster.feature_name() != names:
        raise ValueError("the booster's trees or feature names differ from its metadata")
    return booster


def _fields(lines: list[str], where: str) -> dict[str, str]:
    """``key=value`` lines as a dict, refusing any other line, a bad key or a repeated one."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not _KEY.fullmatch(key) or key in fields:
            raise ValueError(f"{where}: unexpected line {line[:40]!r}")
        fields[key] = value
    return fields


def _check_tree(block: str, index: int, n_features: int) -> dict[str, str]:
    """The fields of tree ``index``, refusing a tree whose arrays or indices would send
    LightGBM outside them."""
    name, *lines = block.splitlines()
    if name != f"Tree={index}":
        raise ValueError(f"{name}: expected Tree={index}")
    fields = _fields(lines, name)
    leaves = int(fields["num_leaves"])
    values = fields["leaf_value"].split()
    if (
        leaves < 1
        or len(values) != leaves
        or fields.get("is_linear", "0") != "0"
        or not all(math.isfinite(float(v)) for v in values)
    ):
        raise ValueError(f"{name}: malformed leaves")
    if leaves == 1:
        return fields
    splits = leaves - 1
    arrays = {
        k: fields[k].split()
        for k in ("split_feature", "threshold", "decision_type", "left_child", "right_child")
    }
    if any(len(v) != splits for v in arrays.values()):
        raise ValueError(f"{name}: split arrays of the wrong length")
    children = [int(c) for c in arrays["left_child"] + arrays["right_child"]]
    features = [int(f) for f in arrays["split_feature"]]
    thresholds = [float(t) for t in arrays["threshold"]]
    kinds = [int(d) for d in arrays["decision_type"]]
    if not all(0 <= f < n_features for f in features):
        raise ValueError(f"{name}: a split on a feature out of range")
    # A tree: every node but the root and every leaf is a child exactly once, and a node's
    # children come after it (as LightGBM numbers them), so there is no cycle to loop in.
    parents = [*range(splits), *range(splits)]  # children = left ones, then right ones
    if sorted(children) != [*range(-leaves, 0), *range(1, splits)] or any(
        0 <= child <= parent for child, parent in zip(children, parents, strict=True)
    ):
        raise ValueError(f"{name}: the nodes do not form a tree")
    cats = int(fields.get("num_cat", "0"))
    if cats:
        bounds = [int(b) for b in fields["cat_boundaries"].split()]
        words = [int(w) for w in fields["cat_threshold"].split()]
        if (
            len(bounds) != cats + 1
            or bounds[0] != 0
            or any(b > a for a, b in zip(bounds[1:], bounds, strict=False))
            or bounds[-1] != len(words)
        ):
            raise ValueError(f"{name}: malformed category sets")
    for kind, threshold in zip(kinds, thresholds, strict=True):
        if kind & 1 and not (0 <= threshold < cats and threshold == int(threshold)):
            raise ValueError(f"{name}: a category split outside its sets")
    return fields


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


def signing_key() -> bytes | None:
    """The signing key from :data:`SIGNING_KEY`, or None when it is unset or empty."""
    key = os.environ.get(SIGNING_KEY, "")
    return key.encode() if key else None


def _signature(key: bytes, manifest: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest() + "\n"


def verify(folder: Path) -> dict[str, bytes]:
    """Check a bundle's files against its manifest, and the manifest against its signature
    when a signing key is set; return the verified bytes of every file.

    The bytes returned are the bytes hashed, so a file swapped after the check is never used.
    """
    folder = Path(folder)
    try:
        raw_manifest = (folder / MANIFEST).read_bytes()
        manifest = json.loads(raw_manifest)["files"]
        names = sorted(manifest)
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelRegistryError(f"{folder}: missing or unreadable {MANIFEST}") from None
    present = sorted(p.name for p in folder.iterdir() if p.name not in (MANIFEST, SIGNATURE))
    pickled = sorted(set(present) & set(_PICKLED))
    if pickled:
        raise ModelRegistryError(
            f"{folder}: holds pickled files ({', '.join(pickled)}) from an older churnguard, "
            "which are never loaded; retrain the model"
        )
    if present != names:
        raise ModelRegistryError(
            f"{folder}: files {printable(present)} do not match the manifest {printable(names)}"
        )
    key = signing_key()
    if key:
        signature = folder / SIGNATURE
        if not signature.is_file():
            raise ModelRegistryError(
                f"{folder}: no {SIGNATURE}, and {SIGNING_KEY} is set: the bundle was saved "
                "without the key; refusing to load it"
            )
        if not hmac.compare_digest(
            signature.read_bytes().strip(), _signature(key, raw_manifest).strip().encode()
        ):
            raise ModelRegistryError(
                f"{signature}: does not match {MANIFEST} under {SIGNING_KEY}: the bundle was "
                "changed or signed with another key; refusing to load it"
            )
    contents = {}
    for name in names:
        data = (folder / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest[name]:
            raise ModelRegistryError(
                f"{folder / name}: sha256 differs from the one recorded at save time; "
                "the file was changed, refusing to load it"
            )
        contents[name] = data
    return contents


def list_versions(registry: Path, name: str) -> list[str]:
    """Saved versions of ``name``, oldest first (folders with other names are not versions)."""
    home = model_home(registry, name)
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if p.is_dir() and is_safe_name(p.name))


Action = Literal["first", "adopted", "promoted", "auto", "rollback"]


@dataclass(frozen=True)
class Promotion:
    """One change of champion, as ``promotions.jsonl`` records it."""

    at: str
    #: The new champion.
    version: str
    #: The champion it replaced (None for the first).
    previous: str | None
    #: ``first`` model saved, ``adopted`` (a registry from before promotion), ``promoted`` by
    #: hand, ``auto`` (training with ``auto_promote``), or ``rollback``.
    action: Action
    by: str
    reason: str


def champion(registry: Path | str, name: str) -> str | None:
    """The version in service, or None before any model is saved."""
    home = model_home(registry, name)
    pointer = home / CHAMPION if (home / CHAMPION).exists() else home / LATEST
    return _follow(pointer).name if pointer.exists() else None


def promotions(registry: Path | str, name: str) -> list[Promotion]:
    """Every change of champion, oldest first.

    Raises
    ------
    ModelRegistryError
        A line of the log is not a promotion record (the message names the line).
    """
    path = model_home(registry, name) / PROMOTIONS
    if not path.is_file():
        return []
    out = []
    for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
        try:
            out.append(Promotion(**json.loads(line)))
        except (ValueError, TypeError):
            raise ModelRegistryError(
                f"{path}, line {number}: not a promotion record: {printable(line[:80])}"
            ) from None
    return out


def promote(
    registry: Path | str, name: str, version: str, *, reason: str, action: Action = "promoted"
) -> Promotion | None:
    """Make ``version`` the champion after verifying its bundle, and record why; None when it
    already is.

    Raises
    ------
    ModelRegistryError
        No such version, or its bundle fails verification (a damaged model never serves).
    """
    folder = resolve(registry, name, version)
    read_metadata(folder)
    if champion(registry, name) == folder.name:
        return None
    return _record(model_home(registry, name), folder.name, action, reason)


def rollback(registry: Path | str, name: str, *, reason: str) -> Promotion:
    """Serve the champion before the current one again, after verifying it.

    Promotions push a version and rollbacks pop one, so rolling back twice goes back two
    champions.

    Raises
    ------
    ModelRegistryError
        No earlier champion; the champion pointer and the log disagree (a hand edit); the
        earlier champion fails verification.
    """
    home = model_home(registry, name)
    served: list[str] = []
    for entry in promotions(registry, name):
        if entry.action == "rollback":
            served.pop()
        else:
            served.append(entry.version)
    current = champion(registry, name)
    if served and served[-1] != current:
        raise ModelRegistryError(
            f"{home / CHAMPION} names {printable(current)} but {home / PROMOTIONS} ends with "
            f"{printable(served[-1])}; promote a version explicitly"
        )
    if len(served) < 2:
        raise ModelRegistryError(f"{home}: no earlier champion to roll back to")
    read_metadata(home / served[-2])
    return _record(home, served[-2], "rollback", reason)


def _record(home: Path, version: str, action: Action, reason: str) -> Promotion:
    """Append the change to the log, then move the champion pointer (both replaced whole)."""
    pointer = home / CHAMPION
    entry = Promotion(
        at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        version=version,
        previous=_follow(pointer).name if pointer.exists() else None,
        action=action,
        by=_who(),
        reason=reason,
    )
    log = home / PROMOTIONS
    before = log.read_text("utf-8") if log.is_file() else ""
    with atomic_path(log) as tmp:
        tmp.write_text(before + json.dumps(asdict(entry), sort_keys=True) + "\n", "utf-8")
    _point(pointer, version)
    return entry


def _point(pointer: Path, version: str) -> None:
    with atomic_path(pointer) as tmp:
        tmp.write_text(version + "\n")


def _who() -> str:
    """user@host of this process, for the promotions log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _installed(library: str) -> str:
    try:
        return package_version(library)
    except PackageNotFoundError:
        return "not installed"
