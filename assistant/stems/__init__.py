"""Stems: master a song from its stems with one shared master-bus decision.

``master_stems(song_dir, out_dir, target)`` loads every stem of one song (the audio files
directly in ``song_dir``), applies conservative, measured per-stem corrections (a rumble/DC
high-pass where a stem carries sub-sonic energy), sums them into the mix, chooses the bus
settings on that mix with :func:`mixbridge.assistant.decide.suggest_settings` and finalizes the mix to
the target like ``mixbridge master``. Each stem then goes through the *same* bus: the linear
stages as they are, the compressor's and the finalizer's gain curves computed on the mix and
applied sample for sample (:mod:`effects.bus`). So the processed stems keep their balance and
their sum is the mastered mix; the report measures the residual between the two as written.
Stems are never normalised one by one.

Input policy for a stem set (also in README.md):

- every file with a readable audio extension directly in the folder is a stem (not
  recursive; hidden files such as macOS ``._name`` are skipped and logged);
- one sample rate for all (never resampled): different rates are refused, naming each file;
- one length for all: different lengths are refused, naming each length, unless ``pad``, which
  pads the shorter stems with silence at the end (logged and reported);
- mono stems next to stereo ones are centred: the one channel is copied to both (0 dB pan law);
- a stem that cannot be read is refused, and with it the set (the song is not complete
  without it): the error names the file; every bad file is listed;
- silent stems are allowed and stay silent; a set whose stems are all silent, or sum to
  silence, is refused.

The package, one concept per module: :mod:`.stemset` (finding and loading a set, the policy
above), :mod:`.lowend` (the per-stem high-pass), :mod:`.attribution` (which stems a bus EQ
move acts on), :mod:`.report` (results, residual, JSON) and :mod:`.pipeline` (``master_stems``).
"""

from mixbridge.assistant.stems.attribution import EqMove, eq_moves
from mixbridge.assistant.stems.lowend import (
    SUBSONIC_HZ,
    StemCorrection,
    apply_correction,
    low_spectrum,
    measure_correction,
)
from mixbridge.assistant.stems.pipeline import StemOptions, master_stems
from mixbridge.assistant.stems.report import REPORT_NAME, Residual, StemResult, StemsReport
from mixbridge.assistant.stems.stemset import find_stems, load_stems

__all__ = [
    "REPORT_NAME", "SUBSONIC_HZ", "EqMove", "Residual", "StemCorrection", "StemOptions", "StemResult", "StemsReport",
    "apply_correction", "eq_moves", "find_stems", "load_stems", "low_spectrum", "master_stems", "measure_correction",
]
