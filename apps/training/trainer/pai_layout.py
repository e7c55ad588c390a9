"""Where a PAI training job keeps its files, as the trainer finds them, and the log lines PAI reads back.

PAI lays a job's container out as::

    /ml/input/config/hyperparameters.json     the job's hyper-parameters: {name: value}, values strings
    /ml/input/data/<channel>/                 each input channel, downloaded from its InputUri
    /ml/output/<channel>/                     each output channel, uploaded to its OutputUri when the job ends
    /ml/usercode/                             the job's code (CodeDir), and the working directory

and points environment variables at them (``PAI_CONFIG_DIR``, ``PAI_HPS`` with the hyper-parameters as JSON,
``PAI_INPUT_<CHANNEL>``, ``PAI_OUTPUT_<CHANNEL>``), which win when set: the PAI emulator sets them to its own
job directories. Nothing here imports Django.

The trainer's stdout is JSON lines: progress (``{"stage", "percent", "message"}``), then one
``{"metric": name, "value": number}`` per metric. The job's ``ProgressDefinitions`` and ``MetricDefinitions``
match those lines (:data:`PROGRESS_REGEX`, :func:`metric_regex`), so that PAI's console shows a run's progress
and its AUC.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

ML_ROOT = Path("/ml")
INPUT_CHANNEL = "train"
OUTPUT_CHANNEL = "model"
SAMPLE_SUFFIX = ".npz"
PROGRESS_REGEX = r'"percent": (\d+(?:\.\d+)?)'
METRIC_NAMES = ("auc", "ks", "log_loss", "accuracy", "precision", "recall", "f1", "rmse", "mae", "r2")
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


class LayoutError(ValueError):
    """The job's files are not where PAI puts them; the message names the path looked at."""


def metric_regex(name: str) -> str:
    return rf'"metric": "{name}", "value": {_NUMBER}'


def metric_lines(metrics: Mapping[str, object]) -> list[str]:
    """One JSON line per finite number among ``metrics`` that PAI is told to read (see :func:`metric_regex`)."""
    return [
        json.dumps({"metric": name, "value": float(value)})
        for name in METRIC_NAMES
        if isinstance(value := metrics.get(name), int | float) and not isinstance(value, bool) and math.isfinite(value)
    ]


def hyperparameters(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The job's hyper-parameters: ``$PAI_CONFIG_DIR/hyperparameters.json``, else /ml/input/config/…, else
    ``$PAI_HPS``."""
    config_dir = Path(env.get("PAI_CONFIG_DIR") or ML_ROOT / "input" / "config")
    path = config_dir / "hyperparameters.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not env.get("PAI_HPS"):
            raise LayoutError(f"No hyper-parameters: {path} does not exist and PAI_HPS is not set.") from None
        text = env["PAI_HPS"]
    values = json.loads(text)
    if not isinstance(values, dict):
        raise LayoutError(f"The hyper-parameters at {path} are not a JSON object.")
    return values


def input_channel(name: str = INPUT_CHANNEL, env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(f"PAI_INPUT_{name.upper()}") or ML_ROOT / "input" / "data" / name)


def output_channel(name: str = OUTPUT_CHANNEL, env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(f"PAI_OUTPUT_{name.upper()}") or ML_ROOT / "output" / name)


def sample_file(path: Path) -> Path:
    """The sample in an input channel: the path itself, or the one ``.npz`` file of the channel's directory."""
    if not path.is_dir():
        return path
    found = sorted(p for p in path.rglob(f"*{SAMPLE_SUFFIX}") if p.is_file())
    if len(found) != 1:
        listed = ", ".join(str(p.relative_to(path)) for p in sorted(path.rglob("*")) if p.is_file()) or "nothing"
        raise LayoutError(f"The input channel {path} must hold one {SAMPLE_SUFFIX} sample; it holds {listed}.")
    return found[0]
