"""Build the self-supervised dataset and train the shipped model.

    mixbridge model train [--audio DIR] [--score-clips N] [--variants V] [--epochs E] [--jobs J]

Sources: clips rendered from music21's public-domain scores with FluidSynth (models.synth;
needs the Debian packages fluidsynth and fluid-soundfont-gm) and, optionally, any folder of
audio. Every source file is split deterministically into train / held-out (every 5th file is
held out), so the evaluation never sees a training file.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.atomic import cache_root, write_text
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.blocks import serial_within_file
from mixbridge.analysis.features import Features
from mixbridge.analysis.progress import Progress, silent
from mixbridge.models.data import (
    LEARNED,
    SCORE_CLIPS_DIR,
    audio_files,
    clips_from_file,
    foreign_examples,
    is_score_clip,
    make_examples,
    split_by_source,
)
from mixbridge.models.net import TargetDescriptor, input_vector, normalise_values

log = logging.getLogger(__name__)

DEFAULT_SCORE_CLIPS = 160
DEFAULT_VARIANTS = 12
DEFAULT_FOREIGN_VARIANTS = 6  # foreign degradations per real clip (models.foreign)
CLIPS_PER_FILE = 3


@dataclass(frozen=True)
class Dataset:
    """Examples as features (not model inputs), so a new input layout needs no re-rendering."""

    features_x: list  # Features of each input clip
    features_y: list  # Features of each rendered target
    values: list[dict[str, float]]  # the learned values that made y from x
    source: list[str]
    seed: list[int]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs and normalised targets."""
        x = np.array([input_vector(fx, TargetDescriptor.from_features(fy))
                      for fx, fy in zip(self.features_x, self.features_y)])
        return x, np.array([normalise_values(v) for v in self.values])

    def save(self, path: Path) -> None:
        lines = (json.dumps({"source": s, "seed": int(k), "values": v, "fx": fx.to_dict(), "fy": fy.to_dict()})
                 for s, k, v, fx, fy in zip(self.source, self.seed, self.values, self.features_x, self.features_y))
        write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Dataset":
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        return cls([Features.from_dict(r["fx"]) for r in rows], [Features.from_dict(r["fy"]) for r in rows],
                   [r["values"] for r in rows], [r["source"] for r in rows], [r["seed"] for r in rows])

    def __add__(self, other: "Dataset") -> "Dataset":
        return Dataset(self.features_x + other.features_x, self.features_y + other.features_y,
                       self.values + other.values, self.source + other.source, self.seed + other.seed)


def _analyze_array(samples: np.ndarray, sample_rate: int):
    return analyze(Audio(samples, sample_rate))


def _file_examples(args: tuple[str, int, int, int]) -> list[tuple]:
    """Worker: every example of one source file (its clips x (variants + foreign variants)),
    as Dataset columns."""
    path, seed, variants, foreign = args
    out: list[tuple] = []
    try:
        clips = clips_from_file(Path(path), max_clips=CLIPS_PER_FILE)
    except Exception as exc:  # a bad file is skipped, never fatal for the dataset
        log.warning("%s: skipped (%s)", path, exc)
        return out
    for c, (samples, rate) in enumerate(clips):
        for ex in make_examples(samples, rate, path, seed * 100 + c, variants, _analyze_array):
            out.append((ex.features_x, ex.features_y, ex.values, path, ex.seed))
        for ex in foreign_examples(samples, rate, path, seed * 100 + c, foreign, _analyze_array):
            out.append((ex.features_x, ex.features_y, ex.values, f"{path} (foreign)", ex.seed))
    return out


def build_dataset(files: Sequence[Path], variants: int, jobs: int, seed: int = 0,
                  progress: Progress | None = None, foreign_variants: int = 0) -> Dataset:
    """Examples from every file, in ``jobs`` processes: ``variants`` chain renders per clip,
    and ``foreign_variants`` foreign degradations per clip of a real recording (not of a
    rendered score clip: the target of a foreign example is the recording itself)."""
    tasks = [(str(p), seed * 10_000 + i, variants, 0 if is_score_clip(p) else foreign_variants)
             for i, p in enumerate(files)]
    rows: list = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, initializer=serial_within_file) as pool:  # files side by side
        for i, result in enumerate(pool.map(_file_examples, tasks)):
            rows.extend(result)
            if progress:
                eta = (time.perf_counter() - start) / (i + 1) * (len(tasks) - i - 1)
                progress(f"dataset: {len(rows)} examples, ETA {eta:.0f} s", i + 1, len(tasks))
    if not rows:
        raise RuntimeError("no training examples could be made from the sources")
    return Dataset(*(list(column) for column in zip(*rows)))


def source_files(cache: Path, audio_dirs: Sequence[Path], score_clips: int, jobs: int,
                 progress: Progress | None = None) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): rendered score clips (cached under ``cache``) and
    every audio file in ``audio_dirs``, each source split on its own (every 5th file held out)."""
    groups: list[list[Path]] = []
    if score_clips > 0:
        from mixbridge.models.synth import render_clips

        def clip_progress(done: int, total: int) -> None:
            if progress:
                progress("rendering score clips", done, total)

        groups.append(render_clips(cache / SCORE_CLIPS_DIR, score_clips, seed=0, jobs=jobs, progress=clip_progress))
    groups += [audio_files(folder) for folder in audio_dirs]
    train_files: list[Path] = []
    held_files: list[Path] = []
    for group in groups:
        tr, held = split_by_source(group)
        train_files += tr
        held_files += held
    return train_files, held_files


def train(out_dir: Path, audio_dirs: Sequence[Path] = (), score_clips: int = DEFAULT_SCORE_CLIPS,
          variants: int = DEFAULT_VARIANTS, epochs: int = 300, jobs: int = 2, cache: Path | None = None,
          progress: Progress | None = None, foreign_variants: int = DEFAULT_FOREIGN_VARIANTS) -> dict:
    """Build the dataset (cached), train, write ``out_dir/model.npz`` and ``training.json``."""
    from mixbridge.models.net import train_torch

    say = progress or silent
    cache = cache or cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_files, held_files = source_files(cache, audio_dirs, score_clips, jobs, say)
    say(f"{len(train_files)} source files for training, {len(held_files)} held out")
    t0 = time.perf_counter()
    data = build_dataset(train_files, variants, jobs, progress=say, foreign_variants=foreign_variants)
    data.save(cache / "train-dataset.jsonl")
    t1 = time.perf_counter()
    x, y = data.arrays()
    say(f"dataset: {len(x)} examples in {t1 - t0:.0f} s; training")
    model, history = train_torch(x, y, epochs=epochs, progress=say)
    # the real recordings no clip was trained on: the out-of-family evaluation restores them
    model.meta["held_out_recordings"] = [p.stem for p in held_files if not is_score_clip(p)]
    model.save(out_dir / "model.npz")
    t2 = time.perf_counter()
    summary = {
        "examples": int(len(x)), "train_files": [p.name for p in train_files],
        "held_out_files": [p.name for p in held_files], "variants_per_clip": variants,
        "foreign_variants_per_real_clip": foreign_variants,
        "clips_per_file": CLIPS_PER_FILE, "epochs": epochs, "dataset_s": round(t1 - t0, 1),
        "training_s": round(t2 - t1, 1), "best_val_mse": model.meta["best_val_mse"],
        "outputs": list(LEARNED),
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
