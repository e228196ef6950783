"""Configuration: frozen dataclasses, YAML -> dataclass, defaults resolved here only.

`None` in a field means "the default", resolved by the `resolve_*` helpers below so that the
rest of the code never guesses.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ftedge.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")
BN_MODES = ("auto", "train", "freeze")
HEAD_INITS = ("random", "probe")
QAT_INITS = ("minmax", "ptq")
DEFAULT_EPOCHS = 15  # train.epochs null: at least this many ...
MIN_STEPS = 240  # ... and enough epochs for this many optimizer steps (few-shot sets), ...
MAX_AUTO_EPOCHS = 60  # ... up to this many
QAT_DEFAULT_EPOCHS = 3  # qat.epochs null: at least this many ...
QAT_MIN_STEPS = 200  # ... and enough for this many steps (few-shot sets), up to MAX_AUTO_EPOCHS
SMALL_DATASET = 10_000  # train images below which `bn: auto` keeps pretrained statistics
DEVICES_HELP = "auto, cpu, cuda, cuda:N or mps"
# The preprocessing contract's choices (formats/contract.py checks recorded contracts with them).
GEOMETRIES = ("crop", "stretch", "letterbox")  # crop: short side resized, centre square cut;
# stretch: the whole image to HxW (DeepStream nvinfer maintain-aspect-ratio=0); letterbox:
# aspect kept, centred, padded with preprocess.pad_value (nvinfer maintain-aspect-ratio=1,
# symmetric-padding=1)
FILTERS = ("bicubic", "bilinear", "nearest")  # Pillow's; bicubic/bilinear antialias on downscale
DECODES = ("full", "draft")  # draft: JPEGs decoded DCT-domain at 1/2, 1/4 or 1/8 scale (still
# at least DRAFT_MARGIN x the size the resize needs); other formats decode in full
DRAFT_MARGIN = 2.0  # as Pillow's thumbnail(reducing_gap=2.0): the resize still sees 2x its output
# preprocess.draft_margin: another margin for a draft decode, recorded in the contract (a draft
# contract without the key meant DRAFT_MARGIN). 1.0 decodes at the smallest DCT scale that still
# covers the resize (a 1080p JPEG to 256 px: 1/4, not 1/2), the fastest and the softest; past 8
# the 1/8 scale is never reached, and the decode is a full one.
MIN_DRAFT_MARGIN, MAX_DRAFT_MARGIN = 1.0, 8.0
# preprocess.reducing_gap: Pillow's resize(..., reducing_gap=G) for every filter resize: box-
# reduce by the largest integer factor that leaves at least G x the output, then the filter from
# there (any source: raw frames, PNGs, JPEGs after their draft). None: off (the filter reads the
# whole image; what every run made before the key existed). 1.0 is the fastest (a 1080p frame to
# 256 px: 4x4 boxes, then a 1.05x filter), 3.0 Pillow's "indistinguishable" gap.
MIN_REDUCING_GAP = 1.0
# a gap above this reduces nothing a camera makes (a 12 MP frame is under 64 x a 224 px input)
MAX_REDUCING_GAP = 64.0
DEFAULT_PAD_VALUE = (0, 0, 0)  # letterbox bars: black, as nvinfer pads
# What an artifact's input takes (export --input-format; a profile's input_format):
INPUT_FORMATS = ("normalized", "float255", "uint8")  # normalized: float32 already
# (x/255 - mean)/std, the graph as trained; float255 / uint8: 8-bit RGB values (float32 or
# uint8), normalised by the graph's first nodes (graph/normalize.py), exact for any mean/std
INPUT_LAYOUTS = ("NCHW", "NHWC")
PREDICT_BATCH = 8  # images per inference in `ftedge predict` (an artifact's fixed batch wins)
# Upper bounds of the numbers a user gives (flags, configs, profiles): past them a value only
# overflows a C integer somewhere below (a traceback), it never means anything useful
MAX_SEED = 2**31 - 1  # numpy, torch and random all take it; ftedge derives per-epoch seeds
MAX_BATCH = 65_536
MAX_IMG_SIZE = 4096
MAX_EPOCHS = 100_000
MAX_WORKERS = 256
MAX_THREADS = 1024
# confidence calibration (confidence.py): folds of the cross-fitting that measures a
# temperature on val images its fit did not see, the seed of their shuffle, and the range the
# fit searches (a T at either end means the val split cannot pin it down: say so)
CALIBRATION_FOLDS = 5
CALIBRATION_SEED = 0
TEMPERATURE_RANGE = (0.05, 20.0)
# unknown rejection (graph/unknown.py, runtime/unknown.py): the score every export appends to
# its graph, the share of val images its threshold accepts, and how many train features k-NN
# carries in the graph at most (a seeded sample beyond: 2048 x 1280 float32 = 10.5 MB).
# benchmarks/unknown_ablation.py chose k-NN: on flowers12 (Lite0) it is the score that meets
# both goals in every runtime with a margin (near AUROC >= 0.93, far FPR95 0.0) and moves
# least under INT8 (README, "Unknown images")
UNKNOWN_SCORE = "knn"
UNKNOWN_TPR = 0.95
UNKNOWN_KNN_BANK = 2048
# Quantization (QatConfig, `ftedge quantize`, the INT8 gates, export --precision auto): every
# signature that takes one of these defaults to None and resolves it with `or_default`.
WEIGHT_BITS = 7  # see QatConfig.weight_bits
MIN_OPSET = 17  # per-channel Q/DQ need opset 13; 17 is what TensorRT 10 and the tests use
OPSET = MIN_OPSET
MAX_DROP = 1.0  # accuracy gate: largest allowed INT8 top-1 drop, in points
FALLBACK_CAP = 0.1  # a failed gate keeps at most this fraction of the quantized layers in float
CALIB_RECIPE = "stratified-256"  # calibration/<name>.yaml
CALIB_METHOD = "entropy"  # how PTQ sets activation ranges (quant/calibrate.METHODS)
CALIB_PERCENTILE = 99.99  # calib_method percentile: the share of |x| values kept in range
INT8_SOURCES = ("auto", "qat", "ptq")  # which Q/DQ graph an INT8 export starts from
INT8_SOURCE = INT8_SOURCES[0]  # auto: the QAT graph when the run has one, else the PTQ graph
# Inference and bench
EVAL_BATCH = 32  # images per forward pass when only logits are wanted (eval, gates)
TOPK = 5  # classes `ftedge predict` shows per image
BENCH_WARMUP = 10  # untimed calls before latency is timed
DEFAULT_WEIGHTS = "imagenet"  # a model's starting weights: imagenet | none | a file
DEFAULT_GEOMETRY = GEOMETRIES[0]
DEFAULT_DECODE = DECODES[0]
DEFAULT_INPUT_FORMAT = INPUT_FORMATS[0]
DEFAULT_LAYOUT = INPUT_LAYOUTS[0]


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are split and loaded."""

    path: str | None = None
    val_fraction: float = 0.2
    split_seed: int = 0
    workers: int | None = None  # None: 0 on <=2 CPUs (decoded images are cached), else min(8, cpus//2)
    cache: bool | None = None  # None: cache decoded, pre-resized images when they fit in 2 GiB
    background: tuple[int, int, int] = (255, 255, 255)  # transparent pixels are composited onto this
    label_check: bool | None = None  # tune lists suspected label errors before it trains (the
    # check of `data check --labels`); None: on when the network starts from pretrained weights
    # (random features say nothing about labels). It costs one frozen forward pass over the
    # images and a 5-fold logistic fit (resolve_label_check)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; validation never augments."""

    scale: tuple[float, float] = (0.35, 1.0)  # RandomResizedCrop area range (geometry crop)
    frame_scale: tuple[float, float] = (0.6, 1.0)  # stretch/letterbox: area range of a random
    # crop with the frame's own aspect ratio, then stretched/letterboxed as on the device, so
    # objects keep the distortion the device gives them (RandomResizedCrop's ratio would not)
    ratio: tuple[float, float] = (0.75, 1.3333)
    hflip: float = 0.5
    color_jitter: float = 0.2  # brightness = contrast = saturation strength; 0 disables


@dataclass(frozen=True)
class PreprocessConfig:
    """The preprocessing contract's choices: how an image becomes the model's input."""

    geometry: str | None = None  # None: the target's (preprocess.target), else crop
    filter: str | None = None  # None: the target's, else the model's (Lite0: bicubic)
    pad_value: tuple[int, int, int] = DEFAULT_PAD_VALUE  # letterbox bars, RGB 0..255
    decode: str = DEFAULT_DECODE  # full | draft (see DECODES)
    reducing_gap: float | None = None  # None: off; >= 1.0: box-reduce first (see MIN_REDUCING_GAP)
    draft_margin: float | None = None  # decode draft only; None: DRAFT_MARGIN (MIN_DRAFT_MARGIN)
    target: str | None = None  # a target profile whose pipeline's geometry/filter to train for


@dataclass(frozen=True)
class ModelConfig:
    """Which network and which starting weights."""

    name: str = "efficientnet_lite0"
    weights: str = DEFAULT_WEIGHTS  # imagenet | none | path to a file
    img_size: int | None = None  # None: the model's pretraining resolution
    dropout: float | None = None  # None: the model's own


@dataclass(frozen=True)
class TrainConfig:
    """The transfer-learning recipe: head warm-up, then full fine-tuning."""

    epochs: int | None = None  # total, head-only epochs included; None: from the dataset size
    # (resolve_epochs: at least DEFAULT_EPOCHS, more for small sets so they get MIN_STEPS steps)
    head_epochs: int = 1  # backbone frozen, only the new head learns
    head_init: str = "random"  # random | probe: the new head starts as the fitted linear probe
    # (LP-FT). Measured (issue 9, 128 px): Lite0 gains with it on flowers17-10shot (+1.8) and
    # monkeys10 (+2.2), MobileNetV2 loses (flowers17 -1.1, 10-shot -2.2), digits with training
    # BatchNorm fall to 0.9387 (0.9889): not a better default
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float = 1e-3  # the head's; the backbone gets lr * backbone_lr_mult
    backbone_lr_mult: float = 0.1
    weight_decay: float = 0.01
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 1.0  # linear warm-up at the start of full fine-tuning
    min_lr_ratio: float = 0.01  # cosine ends at lr * min_lr_ratio
    label_smoothing: float = 0.1
    patience: int | None = 5  # early stopping on val top-1; None or 0 disables
    bn: str = "auto"  # auto: keep pretrained BatchNorm statistics for small sets or batches
    bn_momentum: float | None = 0.1  # None keeps the model's own (mobilenet_v3: 0.01, too slow
    # for a few hundred steps: its running statistics would lag the weights and break eval)
    grad_clip: float | None = None
    amp: bool | None = None  # None: on for CUDA
    channels_last: bool | None = None  # None: on for CUDA
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class QatConfig:
    """Quantization-aware training after the FP32 fine-tune (`ftedge tune --qat`)."""

    enabled: bool = False
    epochs: int | None = None  # None: from the dataset size (resolve_qat_epochs)
    lr: float = 1e-4  # one LR for all weights, cosine-decayed over the QAT epochs
    init: str = "ptq"  # how QAT starts: ptq (the PTQ model: entropy-calibrated ranges, fixed,
    # and bias correction, on up to 256 training images) or minmax (moving min/max over
    # calib_batches augmented batches, following the data for freeze_observers_after epochs).
    # Measured (issue 9, flowers17-10shot, 128 px): Lite0 0.9007 vs 0.8897, MobileNetV2
    # 0.9265 vs 0.9044 INT8 top-1 (FP32 0.9191 / 0.9522)
    freeze_observers_after: int = 1  # QAT epochs after which activation ranges stay fixed
    calib_batches: int = 8  # batches that set the initial activation ranges
    weight_bits: int = WEIGHT_BITS  # 7: weights within [-64, 64], safe for u8 x s8 kernels on
    # x86 CPUs without VNNI (ONNX Runtime, OpenVINO); depthwise convolutions keep the full range, as
    # their kernels cannot saturate; 8: the full INT8 range everywhere (TensorRT-only fleets)
    opset: int = OPSET
    max_drop: float = MAX_DROP
    fallback: bool = True  # a failed gate keeps the most sensitive layers in float ...
    fallback_cap: float = FALLBACK_CAP  # ... at most this fraction of the quantized layers
    distill: bool = True  # QAT learns from the FP32 model's logits too (KL, temperature).
    # Measured (issue 9, 128 px, 6 cells: flowers17, flowers17-10shot, monkeys10 x Lite0,
    # MobileNetV2; INT8 top-1 in ONNX Runtime): better in 4 cells, equal in 1, worse in 1 (by 2
    # images); mean drop vs FP32 0.06 points with it, 0.49 without; within 0.3 points in 3 cells
    # with it, 1 without. The teacher's forward pass cost about 2% of QAT's images/s.
    candidates: int = 3  # the QAT epochs with the best fake-quantized val top-1 (the later
    # epoch on ties) are exported and scored in ONNX Runtime at the end; the best INT8 graph
    # ships. 1: the fake-quantized best alone. PyTorch's fake quantization and ONNX Runtime
    # round a few activations differently (float summation order): the same QAT model's val
    # top-1 differed by up to 5 of 272 images between them (issue 9, flowers17-10shot
    # MobileNetV2; over 8 runs, 4 seeds with distillation and 4 without, the choice gained 1,
    # 2 and 3 images in three and nothing in five).
    distill_temperature: float = 2.0
    distill_weight: float = 0.5  # loss = (1 - w) * CE(labels) + w * T^2 * KL(FP32 || INT8)


@dataclass(frozen=True)
class TuneConfig:
    """Everything `ftedge tune` needs; saved resolved in the run as config.yaml."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    qat: QatConfig = field(default_factory=QatConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    out: str | None = None  # None: runs/<model>-<timestamp>


def or_default(value: Any, default: Any) -> Any:
    """`value`, or `default` when it is None: how a signature's None becomes the default."""
    return default if value is None else value


def shown(value: Any, limit: int = 80) -> str:
    """A value's repr for a message, cut to `limit` characters (a config value can be huge)."""
    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    return r.repr(value)[:limit]


def disable_telemetry() -> None:
    """Keep OpenVINO's and ONNX Runtime's usage telemetry off in this process and the processes
    it starts; call before openvino is imported and before the first ONNX Runtime session.

    ONNX Runtime's wheels write a device id to ~/.cache/Microsoft/DeveloperTools/.onnxruntime/
    and send usage events when their first session is created, unless the environment says
    no: 1.32 reads ORT_DISABLE_TELEMETRY, later releases ORT_TELEMETRY_DISABLED
    (microsoft/onnxruntime#29843, telemetry_environment.h); with either, nothing is created,
    written or sent. onnxruntime.disable_telemetry_events() comes too late (the id is written
    first). ftedge sets both (one copy, in the deploy template, so infer.py does the same),
    unless the user set them: ORT_DISABLE_TELEMETRY=0 is the user's choice.

    OpenVINO's model converter (ovc, behind openvino.convert_model) sends usage events through
    the openvino-telemetry package by default: it writes $HOME/intel/openvino_telemetry and a
    client id there, and its sender threads query an analytics host (one such query once held
    an export's exit). That package has no environment switch, and its documented opt-out
    (`opt_in_out --opt_out`) itself writes to $HOME/intel; ovc falls back to its own no-op stub
    (openvino/tools/ovc/telemetry_stub.py) when the package cannot be imported, so ftedge makes
    it unimportable here. A process that imported it before keeps its own choice.
    """
    from ftedge.deploy.templates.artifact import telemetry_off

    telemetry_off()  # one copy, shared with every deploy/infer.py


_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def check_threads(threads: int | None) -> int | None:
    """A runtime's CPU threads (`--threads`), or None for the runtime's default. More threads
    than usable cores is refused: ONNX Runtime and OpenVINO would start them all, and they
    would only wait on each other (1024 on 2 cores ran a bench for minutes, timing the waits)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"--threads must be a whole number >= 1, got {shown(threads)}",
                          "give the runtime's CPU threads, e.g. 1, or leave it out for the "
                          "runtime's default")
    from ftedge.deploy.templates.artifact import usable_cores  # the kit's rule: its mask

    cpus = usable_cores()
    if threads > cpus:
        raise ConfigError(f"--threads {threads} is more than the {cpus} CPU core(s) this "
                          "process may use: the runtime's threads would wait on each other, "
                          "and a latency would measure that waiting",
                          f"give --threads 1 to {cpus}, or leave it out (the runtime's "
                          "default: one per core)")
    return threads


def require_finite(name: str, value: Any) -> Any:
    """`value` when it is a finite number; else the ConfigError that names it (NaN and inf
    slip through every range check: each comparison with NaN is False)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {shown(value)}",
                          "give an ordinary number")
    return value


_TYPE_EXAMPLES = {int: "a whole number without quotes, e.g. 32 (true/false are not numbers)",
                  float: "a number without quotes, e.g. 0.5 or 3.0e-4",
                  str: "text, e.g. cpu (quote it if YAML reads it as a number: '17')",
                  bool: "true or false"}


def _check_value(name: str, value: Any, hint: Any, where: str) -> Any:
    """Coerce YAML values to the field's type, or raise naming the field and the type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{where}.{name} may not be null", "give a value or drop the key")
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        try:
            return _check_value(name, value, inner[0], where)
        except ConfigError as e:
            if type(None) not in args or " must be " not in e.message:
                raise
            raise ConfigError(e.message.replace(" must be ", " must be null or ", 1),
                              f"write a value or null; what null means for {name} is in its "
                              "comment in ftedge/config.py (for example, train.epochs: null "
                              "chooses the epochs from the dataset size)") from None
    if dataclasses.is_dataclass(hint):  # a nested section, optional ones included
        if not isinstance(value, dict):
            raise ConfigError(f"{where}.{name} must be a mapping, got {shown(value)}",
                              f"write keys under it, e.g. `{name}: {{key: value}}`")
        return from_dict(hint, value, f"{where}.{name}")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}.{name} must be a list, got {shown(value)}",
                              f"write its values in brackets, e.g. `{name}: [a, b]`")
        return tuple(_check_value(name, v, args[0], where) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}.{name} must be a list of {len(args)} values, got "
                              f"{shown(value)}", f"write {len(args)} values in brackets")
        return tuple(_check_value(name, v, a, where) for v, a in zip(value, args))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
        value = float(value)  # PyYAML (YAML 1.1) reads 3e-4 as a string; 3.0e-4 as a float
    if hint is float and isinstance(value, float):
        require_finite(f"{where}.{name}", value)
    wrong_type = hint in (int, float, str, bool) and not isinstance(value, hint)
    if wrong_type or (hint in (int, float) and isinstance(value, bool)):
        raise ConfigError(
            f"{where}.{name} must be {hint.__name__}, got {type(value).__name__} {shown(value)}",
            f"write {_TYPE_EXAMPLES[hint]}")
    return value


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "config") -> Any:
    """Build dataclass `cls` from a dict, rejecting unknown keys and wrong types."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {where}: {', '.join(unknown)}",
            f"valid keys are: {', '.join(names)}",
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _check_value(name, value, hints[name], where)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain dict of YAML-friendly values (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


MAX_YAML_BYTES = 1 << 20  # configs, profiles and recipes are a few kB


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (*name): a few hundred bytes of nested aliases stand
    for gigabytes once anything walks the values (a "billion laughs" file), and ftedge's
    configs, profiles and recipes never need them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted "
                                              "in ftedge files: write the values out", mark)
        return super().compose_node(parent, index)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text parsed safely (no Python objects, no aliases); a ConfigError naming `where`."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {e}",
                          "fix the file (a YAML mapping, e.g. `train: {epochs: 10}`)") from e


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping safely (no aliases, at most 1 MiB of UTF-8 text) with a clear
    error for anything else: a binary file, a checkpoint, a folder, an unreadable path."""
    path = Path(path)
    from ftedge.io import NotRegularFileError, read_file_bytes

    try:
        raw = read_file_bytes(path, MAX_YAML_BYTES)
    except NotRegularFileError as e:
        raise ConfigError(f"{path} is not a regular file (a FIFO, device or socket)",
                          "give the YAML file") from e
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}", "check the path") from e
    except IsADirectoryError as e:
        raise ConfigError(f"{path} is a folder, not a YAML file", "give a .yaml file") from e
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}",
                          "check the path and its permissions") from e
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path} is larger than 1 MiB: not an ftedge YAML file",
                          "give the YAML config/profile/recipe file, not a data or model file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not a text file (not UTF-8 YAML: a checkpoint, model "
                          "or other binary file?)", "give the YAML file") from e
    if "\x00" in text:
        raise ConfigError(f"{path} is not a text file (it holds NUL bytes)", "give the YAML file")
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top, got {type(data).__name__}",
                          "write sections like `train:` and `model:` at the top level")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into `base`; `None` values in override are ignored (= not given)."""
    out = dict(base)
    for k, v in override.items():
        if v is None:
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def build_tune_config(yaml_path: str | None = None, overrides: dict | None = None) -> TuneConfig:
    """YAML file (optional) + overrides (CLI flags or API keywords) -> validated TuneConfig."""
    data = load_yaml(yaml_path) if yaml_path else {}
    cfg = from_dict(TuneConfig, merge(data, overrides or {}))
    validate_tune_config(cfg)
    return cfg


def validate_tune_config(cfg: TuneConfig) -> None:
    """Range checks that types alone cannot express."""
    t, d, a, q, p = cfg.train, cfg.data, cfg.augment, cfg.qat, cfg.preprocess
    checks = [
        (q.epochs is None or 1 <= q.epochs <= MAX_EPOCHS,
         f"qat.epochs must be in 1..{MAX_EPOCHS} (or null: automatic)"),
        (0 <= t.seed <= MAX_SEED, f"train.seed must be in 0..{MAX_SEED}"),
        (0 <= d.split_seed <= MAX_SEED, f"data.split_seed must be in 0..{MAX_SEED}"),
        (q.lr > 0, "qat.lr must be > 0"),
        (q.weight_bits in (7, 8), "qat.weight_bits must be 7 or 8"),
        (q.opset >= MIN_OPSET,
         f"qat.opset must be >= {MIN_OPSET} (per-channel Q/DQ and TensorRT 10)"),
        (q.max_drop >= 0, "qat.max_drop is in points of top-1 and must be >= 0"),
        (t.epochs is None or 1 <= t.epochs <= MAX_EPOCHS,
         f"train.epochs must be in 1..{MAX_EPOCHS} (or null: automatic)"),
        (0 <= t.head_epochs <= (t.epochs or DEFAULT_EPOCHS),
         "train.head_epochs must be between 0 and train.epochs"),
        (1 <= t.batch_size <= MAX_BATCH, f"train.batch_size must be in 1..{MAX_BATCH}"),
        (t.lr > 0, "train.lr must be > 0"),
        (t.optimizer in OPTIMIZERS, f"train.optimizer must be one of {', '.join(OPTIMIZERS)}"),
        (t.bn in BN_MODES, f"train.bn must be one of {', '.join(BN_MODES)}"),
        (t.head_init in HEAD_INITS, f"train.head_init must be one of {', '.join(HEAD_INITS)}"),
        (0 <= t.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
        (0 < d.val_fraction < 1, "data.val_fraction must be in (0, 1)"),
        (0 < a.scale[0] <= a.scale[1] <= 1, "augment.scale must satisfy 0 < min <= max <= 1"),
        (0 < a.frame_scale[0] <= a.frame_scale[1] <= 1,
         "augment.frame_scale must satisfy 0 < min <= max <= 1"),
        (p.geometry is None or p.geometry in GEOMETRIES,
         f"preprocess.geometry must be one of {', '.join(GEOMETRIES)}"),
        (p.filter is None or p.filter in FILTERS,
         f"preprocess.filter must be one of {', '.join(FILTERS)}"),
        (p.decode in DECODES, f"preprocess.decode must be one of {', '.join(DECODES)}"),
        (p.reducing_gap is None or MIN_REDUCING_GAP <= p.reducing_gap <= MAX_REDUCING_GAP,
         f"preprocess.reducing_gap must be a number from {MIN_REDUCING_GAP:g} to "
         f"{MAX_REDUCING_GAP:g} (or left out: off)"),
        (p.draft_margin is None or MIN_DRAFT_MARGIN <= p.draft_margin <= MAX_DRAFT_MARGIN,
         f"preprocess.draft_margin must be a number from {MIN_DRAFT_MARGIN:g} to "
         f"{MAX_DRAFT_MARGIN:g} (or left out: {DRAFT_MARGIN:g})"),
        (p.draft_margin is None or p.decode == "draft",
         "preprocess.draft_margin sets how far a draft decode may shrink a JPEG: it needs "
         "preprocess.decode: draft (--decode draft)"),
        (len(p.pad_value) == 3 and all(0 <= v <= 255 for v in p.pad_value),
         "preprocess.pad_value is an RGB colour: three integers in 0..255"),
        (0 <= a.hflip <= 1, "augment.hflip is a probability in [0, 1]"),
        (cfg.model.img_size is None or 16 <= cfg.model.img_size <= MAX_IMG_SIZE,
         f"model.img_size must be in 16..{MAX_IMG_SIZE}"),
        (cfg.model.dropout is None or 0 <= cfg.model.dropout < 1,
         "model.dropout is a probability in [0, 1)"),
        (d.workers is None or 0 <= d.workers <= MAX_WORKERS,
         f"data.workers must be in 0..{MAX_WORKERS} (or left out: auto)"),
        (len(d.background) == 3 and all(0 <= v <= 255 for v in d.background),
         "data.background is an RGB colour: three integers in 0..255"),
        (t.patience is None or 0 <= t.patience <= MAX_EPOCHS,
         f"train.patience must be in 0..{MAX_EPOCHS} (0 disables)"),
        (t.weight_decay >= 0, "train.weight_decay must be >= 0"),
        (t.backbone_lr_mult >= 0, "train.backbone_lr_mult must be >= 0"),
        (t.warmup_epochs >= 0, "train.warmup_epochs must be >= 0"),
        (0 < t.min_lr_ratio <= 1, "train.min_lr_ratio must be in (0, 1]"),
        (0 <= t.momentum < 1, "train.momentum must be in [0, 1)"),
        (t.grad_clip is None or t.grad_clip > 0, "train.grad_clip must be > 0 (or left out)"),
        (t.bn_momentum is None or 0 < t.bn_momentum <= 1, "train.bn_momentum must be in (0, 1]"),
        (a.color_jitter >= 0, "augment.color_jitter must be >= 0"),
        (0 < a.ratio[0] <= a.ratio[1], "augment.ratio must satisfy 0 < min <= max"),
        (0 <= q.freeze_observers_after <= MAX_EPOCHS,
         f"qat.freeze_observers_after must be in 0..{MAX_EPOCHS}"),
        (1 <= q.calib_batches <= MAX_EPOCHS, f"qat.calib_batches must be in 1..{MAX_EPOCHS}"),
        (q.init in QAT_INITS, f"qat.init must be one of {', '.join(QAT_INITS)}"),
        (0 < q.fallback_cap <= 1, "qat.fallback_cap is a fraction of the layers in (0, 1]"),
        (q.distill_temperature > 0, "qat.distill_temperature must be > 0"),
        (1 <= q.candidates <= MAX_EPOCHS,
         "qat.candidates must be >= 1 (1: the fake-quantized best alone)"),
        (0 <= q.distill_weight <= 1, "qat.distill_weight must be in [0, 1]"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def resolve_workers(workers: int | None) -> int:
    """DataLoader workers: decoded images are cached, so small CPUs do best with none."""
    if workers is not None:
        return workers
    from ftedge.deploy.templates.artifact import usable_cores  # its mask, not the machine's

    cpus = usable_cores()
    return 0 if cpus <= 2 else min(8, cpus // 2)


def resolve_device(device: str) -> str:
    """'auto' -> cuda when available, else cpu; anything else is checked to exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but CUDA is not available here",
                          "use --device cpu, or install a CUDA build of torch on a GPU machine")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps asked for, but MPS is not available", "use --device cpu")
    if not (device == "cpu" or device == "mps" or device.startswith("cuda")):
        raise ConfigError(f"unknown device {device!r}", f"use one of: {DEVICES_HELP}")
    return device


# Flat names used by the CLI flags and by keyword arguments of ftedge.tune(...).
FLAT_KEYS = {
    "data": ("data", "path"), "val_fraction": ("data", "val_fraction"),
    "workers": ("data", "workers"), "model": ("model", "name"),
    "weights": ("model", "weights"), "img_size": ("model", "img_size"),
    "epochs": ("train", "epochs"), "head_epochs": ("train", "head_epochs"),
    "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
    "optimizer": ("train", "optimizer"), "seed": ("train", "seed"),
    "device": ("train", "device"), "patience": ("train", "patience"),
    "amp": ("train", "amp"), "out": ("out",), "qat": ("qat", "enabled"),
    "qat_epochs": ("qat", "epochs"), "max_drop": ("qat", "max_drop"),
    "fallback": ("qat", "fallback"), "distill": ("qat", "distill"),
    "preprocess": ("preprocess", "geometry"), "filter": ("preprocess", "filter"),
    "decode": ("preprocess", "decode"), "target": ("preprocess", "target"),
    "label_check": ("data", "label_check"),
    "reducing_gap": ("preprocess", "reducing_gap"),
    "draft_margin": ("preprocess", "draft_margin"),
}


def nest_overrides(flat: dict[str, Any]) -> dict[str, Any]:
    """{'epochs': 5, 'model': 'x'} -> {'train': {'epochs': 5}, 'model': {'name': 'x'}}."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in FLAT_KEYS:
            raise ConfigError(f"unknown option {key!r}",
                              f"valid options are: {', '.join(sorted(FLAT_KEYS))}")
        if value is None:
            continue
        *parents, leaf = FLAT_KEYS[key]
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def resolve_amp(amp: bool | None, device: str) -> bool:
    """Mixed precision: on by default for CUDA only (CPUs here lack fast bf16)."""
    return device.startswith("cuda") if amp is None else amp


def resolve_channels_last(flag: bool | None) -> bool:
    """channels_last: on by default; measured 1.27x faster training of Lite0 on this CPU too."""
    return True if flag is None else flag


def resolve_epochs(epochs: int | None, steps_per_epoch: int) -> int:
    """train.epochs, or when null the epochs chosen from the dataset size.

    15 epochs of a 170-image set (10 per class, batch 32) are 75 optimizer steps, too few:
    measured on flowers17-10shot (issue 9, Lite0, 128 px) 40 epochs reached 0.9154 val top-1
    against 0.8824 with 15 (linear probe 0.8566), and early stopping still ends a run that has
    converged. Sets with 500+ images already get MIN_STEPS steps in 15 epochs: unchanged.
    """
    return _auto_epochs(epochs, steps_per_epoch, DEFAULT_EPOCHS, MIN_STEPS)


def resolve_qat_epochs(epochs: int | None, steps_per_epoch: int) -> int:
    """qat.epochs, or when null the QAT epochs chosen from the dataset size.

    3 epochs of a 170-image set are 15 optimizer steps: the fake-quantized model has not yet
    recovered from its first steps. Measured on flowers17-10shot (issue 9, 128 px, INT8 top-1
    in ONNX Runtime), MobileNetV2 against FP32 0.9522: 15 steps 0.9154, 50 0.9449, 100 0.9412,
    150 0.9412, 200 0.9559, 300 0.9522; Lite0 against 0.9191: 15 steps 0.9007, 200 0.9081
    (QAT alone from the run's best.pt; `ftedge tune --qat` end to end: MobileNetV2 0.9485 vs
    0.9265 with 3 epochs, Lite0 0.9081 vs 0.9007). flowers17 (1,088 images) now gets 6 epochs:
    MobileNetV2 0.9853 vs 0.9890, Lite0 0.9853 vs 0.9816 (FP32 0.9926 / 0.9779), 1 image each.
    Sets of 2,100+ images (at batch 32) already get QAT_MIN_STEPS steps in 3 epochs.
    """
    return _auto_epochs(epochs, steps_per_epoch, QAT_DEFAULT_EPOCHS, QAT_MIN_STEPS)


def _auto_epochs(epochs: int | None, steps_per_epoch: int, least: int, min_steps: int) -> int:
    """`epochs` when given; else at least `least` epochs and `min_steps` optimizer steps, at
    most MAX_AUTO_EPOCHS."""
    if epochs is not None:
        return epochs
    need = -(-min_steps // max(1, steps_per_epoch))
    return min(MAX_AUTO_EPOCHS, max(least, need))


def resolve_patience(patience: int | None, epochs_given: int | None, epochs: int) -> int | None:
    """Early-stopping patience, stretched with the epochs when train.epochs auto added some.

    An epoch of a 170-image set is 6 steps: 5 of them are too few to tell a plateau (measured on
    flowers17-10shot: patience 5 stopped at 0.8934, 10 reached 0.9154, both with 40 epochs).
    """
    if not patience or epochs_given is not None or epochs <= DEFAULT_EPOCHS:
        return patience
    return -(-patience * epochs // DEFAULT_EPOCHS)


def resolve_label_check(flag: bool | None, weights: str) -> bool:
    """data.label_check: on by default when the network starts from pretrained weights.

    Its cost, measured on flowers12 with 100 planted copies and 48 flipped labels (1,060
    images, Lite0 224 px, 2 cores shared with other jobs, so CPU seconds): the forward pass
    149 s and the 5-fold fit with cleanlab 40 s, against 353 s for the whole one-epoch tune
    it ran in (its head epoch took as long, wall, as the forward pass): about one head-only
    epoch of a run that trains 15 or more. It flagged 47 images, 38 of them planted
    (precision 0.81, recall 0.79).
    """
    return weights != "none" if flag is None else flag


def resolve_bn_frozen(bn: str, per_device_batch: int, pretrained: bool,
                      *, train_images: int) -> bool:
    """Keep the pretrained BatchNorm statistics (BN layers in eval mode while training)?

    auto: yes when starting from pretrained weights and either the per-device batch is below
    16 or the training set is small (< SMALL_DATASET images). Measured on real photos (issue
    9, benchmarks/bn_collapse.py): with training-mode BatchNorm the first full epoch loses
    10-20 points and the run ends below a linear probe; statistics re-estimated from augmented
    batches of a few hundred images no longer fit the val images. From scratch, BatchNorm must
    learn its statistics.
    """
    if bn != "auto":
        return bn == "freeze"
    return pretrained and (per_device_batch < 16 or train_images < SMALL_DATASET)
