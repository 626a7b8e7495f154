"""The options of a master, shared by ``master_file``, ``run_batch`` and ``master_stems`` (whose
StemOptions add the stem-set policy), and the engines that size the moves. A small module of
its own so that the CLI can build its parser (defaults and choices come from here) without
importing the pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field

from mixbridge.assistant.judge import JudgeOptions
from mixbridge.effects.finalize import MAX_LIMITING_DB
from mixbridge.effects.schema import ChainSettings

ENGINES = ("model", "dsp")  # the shipped learned model (numpy), or the signal-processing baseline
DEFAULT_ENGINE = "model"


@dataclass(frozen=True)
class MasterOptions:
    """How a mix is mastered; the CLI's defaults come from here."""

    engine: str = DEFAULT_ENGINE
    refine: bool = True  # the closed-loop refinement on the excerpt (either engine)
    bit_depth: str = "24"
    max_limiting_db: float = MAX_LIMITING_DB
    judgment: JudgeOptions = field(default_factory=JudgeOptions)  # amounts per aspect and the EQ limit
    chain: ChainSettings | None = None  # settings to apply instead of suggesting them
    overwrite: bool = False
