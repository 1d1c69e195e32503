"""YAML -> validated frozen dataclasses. Every error names the file and the key.

A job's resolved config is a plain nested dict (canonical JSON is what gets hashed); the typed view
of each section is built from it with `build`, which rejects unknown keys and wrong types.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from artifact.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def user_path(text: str) -> Path:
    """A path from the command line, relative to the caller's directory: $OILWATER_CWD, which reproduce.sh
    sets before it changes into the repository, else the working directory."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(os.environ.get("OILWATER_CWD") or os.getcwd()) / path


def config_dir() -> Path:
    """configs/ of the checkout, or OILWATER_CONFIGS (a researcher's own table and preset files)."""
    return Path(os.environ.get("OILWATER_CONFIGS", ROOT / "configs"))


PRESETS = ("paper", "quick", "tiny", "smoke", "preflight")


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise UserError(f"{path}: not valid YAML{at}; fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def _coerce(value, typ, where: str):
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [t for t in typing.get_args(typ) if t is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if dataclasses.is_dataclass(typ):
        return build(typ, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise UserError(f"{where}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(typ)
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if typ is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if typ is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-5 as a string
        except ValueError:
            pass
    if typ in (int, str, bool) and type(value) is typ:
        return value
    if typ is dict and isinstance(value, dict):
        return value
    name = getattr(typ, "__name__", str(typ))
    raise UserError(f"{where}: expected {name}, got {value!r}")


def build(cls, data, where: str):
    """Build dataclass `cls` from a mapping; unknown keys and bad types are one-line errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"{where}.{unknown[0]}: unknown key (valid: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"{where}.{missing[0]}: required key missing")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check:
        problem = check()
        if problem:
            raise UserError(f"{where}: {problem}")
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


@dataclass(frozen=True)
class TrainCfg:
    """One training run: SGD with momentum, constant learning rate (as JTT/GEORGE/group DRO do)."""

    epochs: int = 1
    lr: float = 1e-3
    wd: float = 1e-4
    batch_size: int = 128
    momentum: float = 0.9

    def validate(self):
        if self.epochs < 1 or self.batch_size < 1:
            return "epochs and batch_size must be >= 1"
        if self.lr <= 0:
            return "lr must be > 0"
        return None


@dataclass(frozen=True)
class DatasetCfg:
    name: str = "synth-waterbirds"
    size: int = 32  # model input resolution in px
    scale: float = 1.0  # synthetic data: fraction of the real group counts
    data_seed: int = 12345  # synthetic data: fixed across runs; poisons and init vary with the run seed
    train_fraction: float = 1.0  # seeded subsample of train (CelebA 10 % in Section 4)
    allow_count_mismatch: bool = False


@dataclass(frozen=True)
class PretrainCfg:
    """The small CNN's pretraining (artifact/pretrain.py): the embedded default's ImageNet."""

    images: int = 20000  # label-balanced over 8 shape classes; `holdout` of them held out
    size: int = 32
    seed: int = 1
    holdout: float = 0.1
    train: TrainCfg = field(default_factory=lambda: TrainCfg(epochs=20, lr=0.05, wd=5e-4, batch_size=128))

    @property
    def n_holdout(self) -> int:
        """Images held out for the pretraining's epoch selection (the stage and the dry run count the same)."""
        return round(self.images * self.holdout)

    def validate(self):
        if self.images < 16 or not 0 < self.holdout < 1:
            return "pretrain needs images >= 16 and 0 < holdout < 1"
        return None


@dataclass(frozen=True)
class ModelCfg:
    arch: str = "smallcnn"  # smallcnn | resnet18 | resnet50
    # resnet*: ImageNet V1 weights from the torch hub cache; smallcnn: the synthetic pretraining stage
    pretrained: bool = False
    width: int = 16  # smallcnn: channels of the first block
    pretrain: PretrainCfg | None = None  # smallcnn with pretrained: true (required there)

    def validate(self):
        if self.arch == "smallcnn" and self.pretrained and self.pretrain is None:
            return ("a pretrained smallcnn needs a pretrain section (its synthetic pretraining: images, size, seed, "
                    "holdout, train); see configs/presets/tiny.yaml, or set pretrained: false")
        return None

    def resolved(self) -> dict:
        """The job config's model section: without `pretrain` where there is none, so that every job that
        does not pretrain keeps the id it had before pretraining existed."""
        out = dataclasses.asdict(self)
        if out["pretrain"] is None:
            del out["pretrain"]
        return out


@dataclass(frozen=True)
class CheckCfg:
    """What the checker enforces for a preset (see artifact/check.py for the rule)."""

    numbers: bool = False  # compare each cell with the paper's mean ± std
    claims: bool = True  # the paper's qualitative statements
    k: float = 2.0  # cell passes if |ours - paper| <= k * sqrt(sd_paper^2 + sd_ours^2) + floor
    floor: float = 1.0  # absolute slack in percentage points
    ranges: bool = False  # sanity ranges on each row (check.check_ranges): the quick preset's verdict


@dataclass(frozen=True)
class Preset:
    """A preset fixes everything a table leaves open: data, model, hyper-parameters, seeds."""

    description: str
    seeds: int
    datasets: dict  # logical name (waterbirds, celeba) -> DatasetCfg mapping
    model: dict  # logical dataset -> ModelCfg mapping ("default" applies to all)
    methods: dict  # method -> params mapping; key "by_dataset" holds per-dataset overrides
    attacks: dict  # attack -> params mapping; "by_dataset" as above
    check: CheckCfg = field(default_factory=CheckCfg)
    tables: dict = field(default_factory=dict)  # table -> {axis: values} replacing a table's axis values
    # A TrainCfg mapping: backdoor jobs also train ERM with it on the clean data and record the attack's
    # success there (metrics.asr_clean), the baseline of the quick preset's "ASR far above clean" range.
    clean_baseline: dict = field(default_factory=dict)
    source: str = ""  # the file it was read from (set by load_preset; errors in its sections name it)


def load_preset(name: str, configs: Path | None = None, validate: bool = True) -> Preset:
    """The preset `name`; `validate` builds every plugin section (importing those plugins), which `--list`
    skips to stay torch-free (any run validates)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (valid: {', '.join(PRESETS)})")
    path = (configs or config_dir()) / "presets" / f"{name}.yaml"
    data = read_yaml(path)
    data.pop("source", None)
    preset = dataclasses.replace(build(Preset, data, str(path)), source=str(path))
    if validate:
        from artifact.grid import validate_preset  # here, not at the top: grid imports config

        validate_preset(preset)
    return preset
