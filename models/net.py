"""The learned settings model: input vector, numpy inference, torch training.

One input vector serves every use: features of the mix plus a *target descriptor* that a
shipped profile, a reference track or (in training) the rendered target provides. Outputs
are the :data:`models.data.LEARNED` parameters normalised to 0..1 over their training range
(log scale for the ratio). Inference runs in numpy from ``weights/model.npz``; torch is only
imported by :func:`train_torch`.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from mixbridge.analysis.atomic import atomic_path
from mixbridge.analysis.errors import SettingsError
from mixbridge.analysis.features import FEATURE_VERSION
from mixbridge.analysis.spectrum import band_shape, held_bands, shape_mask
from mixbridge.models.data import LEARNED, learned_ranges, learned_specs

log = logging.getLogger(__name__)

MODEL_VERSION = 1
DESCRIPTOR = ("loudness_range_lu", "short_term_spread_lu", "crest_factor_db", "psr_db", "frame_crest_db", "width",
              "tail_level_db")  # = assistant.targets.PROFILE_SCALARS: what a profile or reference provides
SCALARS = ("loudness_range_lu", "short_term_spread_lu", "crest_factor_db", "frame_crest_db", "psr_db", "plr_db",
           "width",
           "correlation", "tail_level_db", "decay_rate_db_per_s", "transient_density_per_s",
           "onset_strength_db", "tilt_db_per_octave")
SHAPE_FLOOR_DB = -40.0
WEIGHTS_FILE = "model.npz"


@dataclass(frozen=True)
class TargetDescriptor:
    """What a profile or reference provides: band shape (31 dB values) and dynamics/stereo/ambience."""

    band_shape_db: np.ndarray
    loudness_range_lu: float
    short_term_spread_lu: float
    crest_factor_db: float
    psr_db: float
    frame_crest_db: float
    width: float
    tail_level_db: float

    @classmethod
    def from_features(cls, f) -> "TargetDescriptor":
        return cls(band_shape(f.mid_band_db), *(float(getattr(f, k)) for k in DESCRIPTOR))

    @classmethod
    def from_profile(cls, p) -> "TargetDescriptor":
        return cls(band_shape(p.band_shape_db), *(float(getattr(p, k)) for k in DESCRIPTOR))


def input_names() -> tuple[str, ...]:
    n = 31
    return (tuple(f"shape_x[{i}]" for i in range(n)) + tuple(f"shape_delta[{i}]" for i in range(n))
            + SCALARS + ("max_short_term_minus_integrated_lu",) + tuple(f"delta_{k}" for k in DESCRIPTOR))


def _finite(value: float, fallback: float = 0.0) -> float:
    return float(value) if math.isfinite(value) else fallback


def input_vector(features, target: TargetDescriptor) -> np.ndarray:
    """The model input for a mix (``Features``) and a target (see :func:`input_names`)."""
    mask = shape_mask(features.sample_rate)
    shape_x = np.maximum(band_shape(features.mid_band_db, mask), SHAPE_FLOOR_DB)
    shape_t = np.maximum(target.band_shape_db - np.mean(target.band_shape_db[mask]), SHAPE_FLOOR_DB)
    # Bands the file cannot hold (above 0.45 x its rate) carry no information: no change asked.
    top = held_bands(features.sample_rate)
    shape_x = np.where(top, shape_x, shape_t)
    scalars = [_finite(getattr(features, k)) for k in SCALARS]
    scalars.append(_finite(features.max_short_term_lufs - features.integrated_lufs))
    deltas = [_finite(getattr(target, k) - getattr(features, k)) for k in DESCRIPTOR]
    return np.concatenate((shape_x, shape_t - shape_x, scalars, deltas)).astype(np.float64)


def normalise_values(values: dict[str, float]) -> np.ndarray:
    """Learned values -> 0..1 over their training ranges, on each parameter's schema scale."""
    return np.clip([spec.normalise(values[name]) for name, spec in learned_specs().items()], 0.0, 1.0)


def denormalise_values(unit: np.ndarray) -> dict[str, float]:
    return {name: spec.denormalise(u) for (name, spec), u in zip(learned_specs().items(), unit)}


# ---- numpy inference ---------------------------------------------------------------------------

class SettingsModel:
    """The shipped MLP, evaluated in numpy: standardise, (Linear, SiLU) x k, Linear, sigmoid."""

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]], mean: np.ndarray, scale: np.ndarray,
                 meta: dict):
        self.layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
        self.mean, self.scale, self.meta = np.asarray(mean), np.asarray(scale), meta
        self.input_low = np.asarray(meta.get("input_low", np.full(self.mean.shape, -np.inf)))
        self.input_high = np.asarray(meta.get("input_high", np.full(self.mean.shape, np.inf)))
        if tuple(meta.get("outputs", ())) != LEARNED or tuple(meta.get("inputs", ())) != input_names():
            raise ValueError("model weights were trained for another input/output layout; retrain them")
        if meta.get("feature_version") != FEATURE_VERSION:
            raise ValueError(f"model weights expect feature_version {meta.get('feature_version')}")

    @property
    def held_out_recordings(self) -> tuple[str, ...]:
        """The real recordings (file stems) no training clip came from, as recorded at training."""
        return tuple(self.meta.get("held_out_recordings", ()))

    def predict_unit(self, x: np.ndarray) -> np.ndarray:
        """``(n, inputs)`` or ``(inputs,)`` -> normalised outputs in 0..1.

        Inputs are first clipped to the range seen in training (1st-99th percentile), so a
        target the chain cannot reach (e.g. more loudness range than the mix has) asks for
        the most the training data showed, not for an extrapolation.
        """
        h = np.clip(np.atleast_2d(x), self.input_low, self.input_high)
        h = (h - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = h / (1.0 + np.exp(-h))  # SiLU
        out = 1.0 / (1.0 + np.exp(-h))
        return out[0] if np.ndim(x) == 1 else out

    def predict(self, features, target: TargetDescriptor) -> dict[str, float]:
        return denormalise_values(self.predict_unit(input_vector(features, target)))

    def save(self, path: str | Path) -> Path:
        arrays = {"mean": self.mean, "scale": self.scale, "meta": np.array(json.dumps(self.meta))}
        for i, (w, b) in enumerate(self.layers):
            arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, allow_pickle=False, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SettingsModel":
        """The shipped weights, or a weights file."""
        source = resources.files("mixbridge.models").joinpath("weights", WEIGHTS_FILE)
        if not (Path(path).is_file() if path else source.is_file()):
            raise SettingsError("model weights not found; retrain (mixbridge model train) or use "
                                "--engine dsp", str(path or source))
        with resources.as_file(source) if not path else nullcontext(Path(path)) as real:
            with np.load(real, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                count = sum(1 for k in data.files if k.startswith("w"))
                layers = [(data[f"w{i}"], data[f"b{i}"]) for i in range(count)]
                return cls(layers, data["mean"], data["scale"], meta)


# ---- torch training ------------------------------------------------------------------------------

def train_torch(x: np.ndarray, y: np.ndarray, *, hidden: int = 128, depth: int = 3, epochs: int = 200,
                lr: float = 2e-3, weight_decay: float = 1e-3, dropout: float = 0.1, seed: int = 0,
                val_fraction: float = 0.1, progress=None) -> tuple[SettingsModel, dict]:
    """Train the MLP on inputs ``x`` (n, d) and normalised targets ``y`` (n, k).

    Returns the model (as numpy weights) and a history dict (train/val loss per epoch).
    """
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a small MLP: one thread is as fast and leaves the other core free
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = max(1, int(len(x) * val_fraction))
    val, tr = order[:n_val], order[n_val:]
    low, high = np.percentile(x[tr], 1, axis=0), np.percentile(x[tr], 99, axis=0)
    x = np.clip(x, low, high)  # as inference does
    mean = x[tr].mean(axis=0)
    scale = np.maximum(x[tr].std(axis=0), 1e-6)
    xt = torch.tensor((x - mean) / scale, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    layers: list[torch.nn.Module] = []
    width_in = x.shape[1]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width_in, hidden), torch.nn.SiLU(), torch.nn.Dropout(dropout)]
        width_in = hidden
    layers.append(torch.nn.Linear(width_in, y.shape[1]))
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    history: dict[str, list[float]] = {"train": [], "val": []}
    best: tuple[float, list[tuple[np.ndarray, np.ndarray]]] = (math.inf, [])
    batch = 128
    for epoch in range(epochs):
        net.train()
        perm = torch.tensor(rng.permutation(tr))
        total = 0.0
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(torch.sigmoid(net(xt[idx])), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(torch.nn.functional.mse_loss(torch.sigmoid(net(xt[val])), yt[val]))
        history["train"].append(total / len(tr))
        history["val"].append(val_loss)
        if val_loss < best[0]:
            best = (val_loss, [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
                               for m in net if isinstance(m, torch.nn.Linear)])
        if progress and (epoch % 20 == 0 or epoch == epochs - 1):
            progress(f"epoch {epoch + 1}/{epochs}: train {history['train'][-1]:.4f}, val {val_loss:.4f}")
    meta = {"model_version": MODEL_VERSION, "feature_version": FEATURE_VERSION, "inputs": list(input_names()),
            "outputs": list(LEARNED), "ranges": {k: list(v) for k, v in learned_ranges().items()},
            "input_low": low.tolist(), "input_high": high.tolist(),
            "hidden": hidden, "depth": depth, "epochs": epochs, "dropout": dropout, "weight_decay": weight_decay,
            "best_val_mse": best[0], "seed": seed}
    return SettingsModel(best[1], mean, scale, meta), history
