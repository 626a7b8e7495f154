"""Built-in source material: multi-instrument music clips rendered from public-domain scores.

The self-supervised training data (:mod:`models.data`) needs realistic music to start from.
This module makes it on the machine, with nothing downloaded at run time: scores from the
corpus bundled with ``music21`` (Bach chorales, Palestrina masses, Beethoven/Mozart/Haydn
quartets, Monteverdi madrigals, trecento pieces, ...) are excerpted and re-orchestrated with
seeded variation, rendered with FluidSynth and a General MIDI soundfont, and mixed in numpy.

What is varied, all drawn from the clip's seed:

- the excerpt (a bar-aligned stretch of the score; a short score is looped);
- the instrumentation: one *palette* per clip (piano, strings, brass, woodwinds, organ, band,
  mixed), a GM program per part chosen to fit the part's register, the lowest part played by
  a bass instrument, and sometimes a drum part (GM channel 10: kick, snare, hats) in the
  score's metre and tempo;
- tempo (score tempo, or a plausible one for its metre, times 0.8–1.25), transposition
  (±5 semitones), velocities (clip scale, per-part level, per-note accents and jitter),
  per-part level (±6 dB) and pan (a seeded left/right spread).

Each part is rendered as its own stem: all stems go through one FluidSynth run, one after
another in time (each on a freshly reset channel, every sound cut at its end), and the output
is sliced back into stems, which are panned, levelled and summed here. Reverb and chorus are
off: the clips are dry, and :func:`models.data.starting_balance` adds room and colour later.
Every clip is peak-normalised to :data:`PEAK_DBFS` and written as a 32-bit float WAV.

Needs the Debian packages ``fluidsynth`` and ``fluid-soundfont-gm`` (FluidR3_GM.sf2) and the
``music21`` Python package; :func:`require_renderer` names what is missing.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import subprocess
import tempfile
import warnings
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from mixbridge.analysis.audio import Audio, save
from mixbridge.analysis.errors import MixbridgeError

log = logging.getLogger(__name__)

SOUNDFONT_PATH = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FLUIDSYNTH_APT = "fluidsynth"
SOUNDFONT_APT = "fluid-soundfont-gm"

PEAK_DBFS = -3.0  # sample peak of every written clip
FLUIDSYNTH_GAIN = 0.4  # FluidSynth master gain; the float output is normalised afterwards anyway
TEMPO_FACTOR_RANGE = (0.8, 1.25)
TRANSPOSE_SEMITONES = 5  # transposition drawn from -5..+5
PART_LEVEL_DB = 6.0  # per-part level drawn from -6..+6 dB
MIN_NOTES = 40  # a listed score has at least this many notes (music21 metadata)
MIN_COVERAGE = 0.6  # share of the clip during which some note sounds
MIN_SOUNDING = 0.5  # share of 100 ms windows within SOUNDING_RANGE_DB of the loudest window
SOUNDING_RANGE_DB = 45.0
MAX_EXCERPT_TRIES = 6  # excerpts tried per score before it is given up (silent, too sparse)
MAX_SCORE_TRIES = 5  # scores tried per clip by render_clips before the clip is given up
MAX_PARTS = 12
EXCLUDED_FOLDERS = frozenset({"demos", "theoryExercises"})  # music21's test and teaching files
GAP_S = 1.0  # silence between stems in the FluidSynth run
FADE_IN_S = 0.005
FADE_OUT_S = 0.03
_TICKS_PER_S = 1000  # the MIDI files run at 60 QPM with 1000 ticks per quarter: 1 tick = 1 ms
_DRUM_CHANNEL = 9

# GM program -> (lowest, highest) comfortable MIDI note.
PROGRAM_RANGE = {
    0: (21, 108), 1: (21, 108), 2: (21, 108), 4: (28, 103), 5: (28, 103),
    16: (36, 96), 17: (36, 96), 19: (24, 96), 20: (36, 91),
    24: (40, 84), 25: (40, 84), 26: (40, 86), 27: (40, 86),
    32: (28, 67), 33: (28, 67), 34: (28, 67), 35: (28, 67),
    40: (55, 100), 41: (48, 88), 42: (36, 76), 43: (28, 60), 45: (36, 91),
    48: (36, 96), 49: (36, 96), 50: (36, 96),
    56: (54, 84), 57: (40, 72), 58: (28, 58), 59: (54, 82), 60: (41, 77), 61: (36, 84),
    68: (58, 91), 69: (52, 81), 70: (34, 72), 71: (50, 91), 73: (60, 96), 74: (60, 96),
}
PIANOS = (0, 1, 2, 4, 5)
ORGANS = (16, 17, 19, 20)
GUITARS = (24, 25, 26, 27)
STRINGS = (40, 41, 42, 48, 49, 45)
BRASS = (56, 57, 59, 60, 61)
WOODWINDS = (68, 69, 70, 71, 73, 74)


@dataclass(frozen=True)
class Palette:
    """An ensemble: programs for the upper parts and the lowest part, drum probability.

    ``single`` palettes (piano, organ) play every part on one program drawn per clip.
    """

    name: str
    weight: float
    upper: tuple[int, ...]
    bass: tuple[int, ...]
    drum_probability: float
    single: bool = False


PALETTES = (
    Palette("piano", 0.18, PIANOS, PIANOS, 0.25, single=True),
    Palette("strings", 0.18, STRINGS, (42, 43, 48), 0.10),
    Palette("brass", 0.10, BRASS, (58, 57, 61), 0.15),
    Palette("woodwinds", 0.12, WOODWINDS, (70, 71), 0.10),
    Palette("organ", 0.08, ORGANS, ORGANS, 0.05, single=True),
    Palette("band", 0.17, PIANOS[:2] + (4, 5, 16, 17, 48, 50) + GUITARS, (32, 33, 34, 35), 0.75),
    Palette("mixed", 0.17, PIANOS + ORGANS + GUITARS + STRINGS + BRASS + WOODWINDS,
            (32, 33, 42, 43, 58, 70, 0), 0.35),
)

# GM percussion keys (channel 10)
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51


class SynthUnavailableError(MixbridgeError):
    """FluidSynth, the General MIDI soundfont or music21 is not installed."""

    code = "synth_unavailable"


class UnusableScoreError(MixbridgeError):
    """A score cannot give a clip: it fails to parse, has no notes, or no sounding excerpt."""

    code = "unusable_score"


class SynthError(MixbridgeError):
    """FluidSynth ran but failed or wrote no audio."""

    code = "synth_failed"


# ---------------------------------------------------------------------------- availability


def require_renderer() -> str:
    """The ``fluidsynth`` executable, checked together with the soundfont and music21.

    Raises
    ------
    SynthUnavailableError
        Naming the Debian package (``fluidsynth``, ``fluid-soundfont-gm``) or the Python
        package (``music21``) to install.
    """
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise SynthUnavailableError(
            f"the fluidsynth program is not installed: apt-get install -y {FLUIDSYNTH_APT}")
    if not SOUNDFONT_PATH.is_file():
        raise SynthUnavailableError(
            f"the General MIDI soundfont {SOUNDFONT_PATH} is missing: "
            f"apt-get install -y {SOUNDFONT_APT}")
    _music21()
    return exe


def _music21():
    try:
        import music21
    except ImportError as exc:
        raise SynthUnavailableError("the music21 package is not installed: pip install music21") from exc
    return music21


# ---------------------------------------------------------------------------- score list


def list_scores(limit: int | None = None) -> list[str]:
    """Corpus paths of the music21 scores usable as sources, in a deterministic order.

    A usable score is a single work (not one tune of a collection file) with at least two
    parts and :data:`MIN_NOTES` notes, according to music21's bundled metadata (no score is
    parsed here). The order interleaves the corpus folders (composers or collections)
    round-robin, each sorted by path, so any prefix is varied: ``list_scores(20)`` is not
    twenty Bach chorales.

    Parameters
    ----------
    limit : int, optional
        Return at most this many paths.

    Returns
    -------
    list of str
        Paths relative to the corpus, e.g. ``"bach/bwv66.6.mxl"``, accepted by
        :func:`render_clip` (``music21.corpus.parse``).
    """
    scores = list(_all_scores())
    return scores if limit is None else scores[: max(0, int(limit))]


@functools.lru_cache(maxsize=1)
def _all_scores() -> tuple[str, ...]:
    music21 = _music21()
    bundle = music21.corpus.corpora.CoreCorpus().metadataBundle
    if len(bundle) == 0:
        bundle.read()
    # Iterating a MetadataBundle indexes it entry by entry (quadratic: a minute for the core
    # corpus); its entry dict is read directly when it has one.
    entries = getattr(bundle, "_metadataEntries", None)
    entries = list(entries.values()) if isinstance(entries, dict) else list(bundle)
    groups: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        meta = entry.metadata
        if entry.number is not None or meta is None:
            continue  # one tune of a multi-work file (mostly single-line folk tunes)
        if (meta.numberOfParts or 0) < 2 or (meta.noteCount or 0) < MIN_NOTES:
            continue
        if getattr(meta, "fileFormat", None) == "romantext":
            continue  # Roman-numeral analyses: chord symbols, not parts
        path = str(entry.sourcePath).replace("\\", "/")
        folder = path.split("/", 1)[0]
        if folder not in EXCLUDED_FOLDERS:
            groups[folder].append(path)
    columns = [sorted(set(paths)) for _, paths in sorted(groups.items())]
    ordered: list[str] = []
    for row in range(max((len(c) for c in columns), default=0)):
        ordered.extend(c[row] for c in columns if row < len(c))
    log.debug("music21 corpus: %d usable scores in %d folders", len(ordered), len(columns))
    return tuple(ordered)


# ---------------------------------------------------------------------------- score -> notes


@dataclass(frozen=True)
class _Note:
    start_ql: float
    end_ql: float
    pitch: int


@dataclass
class _Score:
    """A parsed score reduced to what rendering needs."""

    path: str
    parts: list[list[_Note]]  # per part, ties merged, sorted by start
    bars: list[tuple[float, float]]  # (offset_ql, length_ql) of the first part's measures
    bar_ql: float  # the most common bar length (shorter bars are pickups or endings)
    length_ql: float
    tempo_qpm: float | None  # from the score's first metronome mark, if any
    beat_ql: float
    beats_per_bar: int
    beat_division: int


@functools.lru_cache(maxsize=4)
def _load_score(path: str) -> _Score:
    music21 = _music21()
    try:
        with warnings.catch_warnings(record=True) as caught:  # music21 warns on odd notation
            warnings.simplefilter("always")
            score = music21.corpus.parse(path)
        for warning in caught[:5]:
            log.debug("%s: music21: %s", path, warning.message)
    except Exception as exc:  # music21 raises many kinds on bad files
        raise UnusableScoreError(f"music21 cannot parse it ({type(exc).__name__}: {exc})", path) from exc
    parts_m21 = list(getattr(score, "parts", []) or [])
    parts = [notes for notes in (_part_notes(p) for p in parts_m21) if notes]
    if not parts:
        raise UnusableScoreError("no part with pitched notes", path)
    first = parts_m21[0]
    ts = first.recurse().getElementsByClass(music21.meter.TimeSignature).first()
    if ts is not None:
        beat_ql = float(ts.beatDuration.quarterLength)
        beats, division = int(ts.beatCount), int(ts.beatDivisionCount or 2)
    else:
        beat_ql, beats, division = 1.0, 4, 2
    length_ql = max(n.end_ql for notes in parts for n in notes)
    bars = [(float(m.offset), float(m.duration.quarterLength))
            for m in first.getElementsByClass(music21.stream.Measure)]
    bars = [(o, d) for o, d in bars if d > 0 and o < length_ql]
    if not bars:  # no measures: bars of the time signature's length
        bar_ql = beat_ql * beats
        bars = [(i * bar_ql, bar_ql) for i in range(int(math.ceil(length_ql / bar_ql)))]
    lengths, counts = np.unique(np.round([d for _, d in bars], 6), return_counts=True)
    return _Score(path, parts, bars, float(lengths[np.argmax(counts)]), length_ql,
                  _score_tempo_qpm(score, music21), beat_ql if beat_ql > 0 else 1.0, max(1, beats),
                  max(2, division))


def _score_tempo_qpm(score, music21) -> float | None:
    for mark in score.recurse().getElementsByClass(music21.tempo.MetronomeMark):
        try:
            qpm = mark.getQuarterBPM()
        except Exception:  # an incomplete mark
            qpm = None
        if qpm and 20.0 <= qpm <= 300.0:
            return float(qpm)
        break
    return None


def _part_notes(part) -> list[_Note]:
    """Pitched notes of a part with tied notes merged (faster than ``stripTies`` on big scores)."""
    notes: list[_Note] = []
    open_ties: dict[int, int] = {}  # pitch -> index in notes of a note waiting for its tie
    for element in part.flatten().notes:
        length = float(element.quarterLength)
        pitches = getattr(element, "pitches", ())
        if length <= 0 or not pitches:
            continue  # grace notes, unpitched percussion
        start = float(element.offset)
        members = list(getattr(element, "notes", ())) or [element]
        for i, pitch in enumerate(pitches):
            midi = int(round(pitch.ps))
            holder = members[i] if i < len(members) else element
            tie = getattr(getattr(holder, "tie", None), "type", None) or \
                getattr(getattr(element, "tie", None), "type", None)
            k = open_ties.get(midi)
            if tie in ("continue", "stop") and k is not None and abs(notes[k].end_ql - start) < 1e-6:
                notes[k] = _Note(notes[k].start_ql, start + length, midi)
                if tie == "stop":
                    del open_ties[midi]
                continue
            notes.append(_Note(start, start + length, midi))
            if tie in ("start", "continue"):
                open_ties[midi] = len(notes) - 1
            else:
                open_ties.pop(midi, None)
    notes.sort(key=lambda n: (n.start_ql, n.pitch))
    return notes


def _excerpt(score: _Score, start_bar: int, length_ql: float) -> tuple[list[list[_Note]], list[float]]:
    """Notes of every part from bar ``start_bar`` on, ``length_ql`` long (looping a short score).

    Returns the notes per part, relative to the excerpt start and cut at its end, and the
    excerpt-relative offsets of the bar lines.
    """
    segments = []  # (source start, source end, excerpt offset of the source start)
    bar_lines = []
    position, bar, seg_start = 0.0, start_bar, None
    while position < length_ql:
        offset, dur = score.bars[bar]
        if seg_start is None:
            seg_start = (offset, position)
        bar_lines.append(position)
        position += dur
        bar += 1
        if bar == len(score.bars) or position >= length_ql:
            segments.append((seg_start[0], offset + dur, seg_start[1] - seg_start[0]))
            seg_start, bar = None, bar % len(score.bars)
    parts = []
    for notes in score.parts:
        out = []
        for lo, hi, shift in segments:
            for n in notes:
                if lo <= n.start_ql < hi and n.start_ql + shift < length_ql:
                    out.append(_Note(n.start_ql + shift, min(n.end_ql + shift, length_ql), n.pitch))
        parts.append(out)
    return parts, bar_lines


def _coverage(parts: Sequence[Sequence[_Note]], length_ql: float) -> float:
    intervals = sorted((n.start_ql, n.end_ql) for notes in parts for n in notes)
    covered, reach = 0.0, 0.0
    for a, b in intervals:
        a = max(a, reach)
        if b > a:
            covered += b - a
            reach = b
    return covered / length_ql if length_ql > 0 else 0.0


# ---------------------------------------------------------------------------- arrangement


@dataclass(frozen=True)
class _Stem:
    """One rendered part: MIDI notes in seconds, its program or drums, level and pan."""

    name: str
    program: int | None  # None: the GM drum kit on channel 10
    notes: tuple[tuple[float, float, int, int], ...]  # (start_s, end_s, MIDI note, velocity)
    level_db: float
    pan: float  # -1 (left) .. +1 (right)


def _fit_program(rng: np.random.Generator, choices: Sequence[int], median: float) -> tuple[int, int]:
    """A program from ``choices`` suiting a part around ``median``, and the octave shift to fit it."""
    fitting = [p for p in choices if PROGRAM_RANGE[p][0] + 3 <= median <= PROGRAM_RANGE[p][1] - 3]
    program = int(rng.choice(fitting or list(choices)))
    lo, hi = PROGRAM_RANGE[program]
    shift = 0
    while median + shift > hi - 5 and shift > -24:
        shift -= 12
    while median + shift < lo + 5 and shift < 24:
        shift += 12
    return program, shift


def _arrange(rng: np.random.Generator, score: _Score, parts: list[list[_Note]], bar_lines: list[float],
             qpm: float, transpose: int, duration_s: float) -> list[_Stem]:
    weights = np.array([p.weight for p in PALETTES])
    palette = PALETTES[int(rng.choice(len(PALETTES), p=weights / weights.sum()))]
    sounding = [notes for notes in parts if notes][:MAX_PARTS]
    medians = [float(np.median([n.pitch for n in notes])) + transpose for notes in sounding]
    lowest = int(np.argmin(medians)) if len(sounding) > 1 else -1
    single = int(rng.choice(palette.upper)) if palette.single else None
    seconds_per_ql = 60.0 / qpm
    velocity_scale = rng.uniform(0.75, 1.15)
    spread = rng.uniform(0.2, 0.8)
    pans = list(np.linspace(-spread, spread, len(sounding)) if len(sounding) > 1 else [rng.uniform(-0.2, 0.2)])
    pans = [pans[i] for i in rng.permutation(len(pans))]
    bar_set = {round(b, 6) for b in bar_lines}
    stems = []
    for k, notes in enumerate(sounding):
        if single is not None:
            program, shift = single, 0
            if medians[k] + shift > PROGRAM_RANGE[single][1] - 5:
                shift = -12
        else:
            program, shift = _fit_program(rng, palette.bass if k == lowest else palette.upper, medians[k])
        base_velocity = rng.uniform(70, 100) * velocity_scale
        articulation = rng.uniform(0.85, 1.0)
        events = []
        for n in notes:
            pitch = n.pitch + transpose + shift
            if not 0 <= pitch <= 127:
                continue
            start = n.start_ql * seconds_per_ql + rng.normal(0.0, 0.004)
            start = min(max(start, 0.0), duration_s)
            length = (n.end_ql - n.start_ql) * seconds_per_ql * articulation
            accent = 8.0 if round(n.start_ql, 6) in bar_set else 0.0
            velocity = int(np.clip(round(base_velocity + accent + rng.normal(0.0, 5.0)), 15, 127))
            events.append((start, min(start + max(length, 0.03), duration_s), pitch, velocity))
        events = _separate_repeats(events)
        if not events:
            continue
        pan = rng.uniform(-0.1, 0.1) if k == lowest else float(pans[k])
        stems.append(_Stem(f"part{k + 1}:{program}", program, tuple(events),
                           float(rng.uniform(-PART_LEVEL_DB, PART_LEVEL_DB)), float(pan)))
    if stems and rng.random() < palette.drum_probability:
        stems.append(_drums(rng, score, bar_lines, duration_s * qpm / 60.0, qpm, velocity_scale))
    log.debug("%s: palette %s, stems %s, %.1f QPM, transpose %+d", score.path, palette.name,
              " ".join(s.name for s in stems), qpm, transpose)
    return stems


def _separate_repeats(events: list[tuple[float, float, int, int]]) -> list[tuple[float, float, int, int]]:
    """End each note before the next note of the same pitch starts (a MIDI channel cannot overlap them)."""
    events.sort()
    next_start: dict[int, float] = {}
    out = []
    for start, end, pitch, velocity in reversed(events):
        end = min(end, next_start.get(pitch, math.inf) - 0.005)
        if end - start >= 0.01:
            out.append((start, end, pitch, velocity))
            next_start[pitch] = start
    return out[::-1]


def _drums(rng: np.random.Generator, score: _Score, bar_lines: Sequence[float], length_ql: float, qpm: float,
           velocity_scale: float) -> _Stem:
    """A kick/snare/hat groove on the excerpt's own bar lines, in the score's metre and tempo.

    The felt beat is the notated beat, doubled when it runs faster than 150 per minute
    (a fast 3/4 goes one-in-a-bar, the cymbal in triplets) and halved when slower than 50.
    """
    seconds_per_ql = 60.0 / qpm
    beat_ql, division = score.beat_ql, score.beat_division
    bar_ql = score.beat_ql * score.beats_per_bar
    if beat_ql * seconds_per_ql < 0.4:
        if score.beats_per_bar % 2 == 0:
            beat_ql *= 2
        else:
            beat_ql, division = bar_ql, score.beats_per_bar
    elif beat_ql * seconds_per_ql > 1.2:
        beat_ql, division = beat_ql / 2, 2
    if division == 2 and beat_ql * seconds_per_ql > 0.55 and rng.random() < 0.6:
        division = 4  # a slow beat: sixteenth-note cymbal
    cymbal = RIDE if rng.random() < 0.25 else CLOSED_HAT
    syncopate = rng.random() < 0.4
    crash = rng.random() < 0.5
    events = []  # (time in ql, key, velocity)
    counted = 0  # beats so far, for one-beat bars
    for i, bar_start in enumerate(bar_lines):
        bar_end = min(bar_lines[i + 1] if i + 1 < len(bar_lines) else bar_start + bar_ql, length_ql)
        beats = max(1, int(round((bar_end - bar_start) / beat_ql)))
        for beat in range(beats):
            if beats == 1:
                kick, snare = counted % 2 == 0, counted % 2 == 1
            else:
                kick = beat == 0 or (beats >= 4 and beats % 2 == 0 and beat == beats // 2)
                snare = beat % 2 == 1 or (beats == 3 and beat == 2)
            counted += 1
            for sub in range(division):
                t = bar_start + (beat + sub / division) * beat_ql
                if t >= bar_end:
                    break
                last = beat == beats - 1 and sub == division - 1
                key = OPEN_HAT if cymbal == CLOSED_HAT and last and rng.random() < 0.3 else cymbal
                events.append((t, key, 78 if sub == 0 else 58))
                if sub == 0 and kick:
                    events.append((t, KICK, 104))
                if sub == 0 and snare:
                    events.append((t, SNARE, 98 if beats != 3 else 80))
                if syncopate and beats >= 4 and beat == beats - 2 and sub == division // 2:
                    events.append((t, KICK, 88))
        if i == 0 and crash:
            events.append((bar_start, CRASH, 100))
    duration_s = length_ql * seconds_per_ql
    notes = []
    for t_ql, key, velocity in events:
        t = min(max(t_ql * seconds_per_ql + rng.normal(0.0, 0.003), 0.0), duration_s)
        v = int(np.clip(round(velocity * velocity_scale + rng.normal(0.0, 6.0)), 15, 127))
        notes.append((t, min(t + 0.08, duration_s), key, v))
    level = float(rng.uniform(-PART_LEVEL_DB, PART_LEVEL_DB))
    return _Stem("drums", None, tuple(sorted(notes)), level, float(rng.uniform(-0.1, 0.1)))


# ---------------------------------------------------------------------------- MIDI + FluidSynth


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _stems_midi(stems: Sequence[_Stem], duration_s: float) -> tuple[bytes, float]:
    """A type-0 MIDI file playing the stems one after another; returns it and the stem spacing in s."""
    spacing_s = duration_s + GAP_S
    events: list[tuple[int, int, bytes]] = [(0, 0, b"\xff\x51\x03\x0f\x42\x40")]  # 60 QPM
    for k, stem in enumerate(stems):
        t0 = int(round(k * spacing_s * _TICKS_PER_S))
        ch = _DRUM_CHANNEL if stem.program is None else 0
        setup = [bytes([0xB0 | ch, 121, 0])]
        if stem.program is not None:
            setup.append(bytes([0xC0 | ch, stem.program]))
        setup += [bytes([0xB0 | ch, 7, 100]), bytes([0xB0 | ch, 10, 64]), bytes([0xB0 | ch, 11, 127])]
        events += [(t0, 0, msg) for msg in setup]
        for start, end, pitch, velocity in stem.notes:
            on = t0 + int(round(start * _TICKS_PER_S))
            off = max(on + 1, t0 + int(round(end * _TICKS_PER_S)))
            events.append((on, 2, bytes([0x90 | ch, pitch, velocity])))
            events.append((off, 1, bytes([0x80 | ch, pitch, 0])))
        stop = t0 + int(round(duration_s * _TICKS_PER_S)) + 5
        events += [(stop, 3, bytes([0xB0 | ch, 123, 0])), (stop, 3, bytes([0xB0 | ch, 120, 0]))]
    end = int(round(len(stems) * spacing_s * _TICKS_PER_S))
    events.append((end, 4, b"\xb0\x79\x00"))
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = bytearray(), 0
    for tick, _, msg in events:
        track += _vlq(tick - now) + msg
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") \
        + _TICKS_PER_S.to_bytes(2, "big")
    return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track), spacing_s


def _render_stems(exe: str, stems: Sequence[_Stem], sample_rate: int, duration_s: float) -> list[np.ndarray]:
    """Each stem as a ``(2, n)`` float64 array, from one FluidSynth run."""
    midi, spacing_s = _stems_midi(stems, duration_s)
    n = int(round(duration_s * sample_rate))
    with tempfile.TemporaryDirectory(prefix="mixbridge-synth-") as tmp:
        mid_path, wav_path = Path(tmp) / "stems.mid", Path(tmp) / "stems.wav"
        mid_path.write_bytes(midi)
        cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", str(FLUIDSYNTH_GAIN), "-r", str(sample_rate),
               "-o", "synth.dynamic-sample-loading=1", "-O", "float", "-T", "wav",
               "-F", str(wav_path), str(SOUNDFONT_PATH), str(mid_path)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not wav_path.is_file():
            tail = (result.stderr or result.stdout or "").strip()[-500:]
            raise SynthError(f"fluidsynth failed (exit {result.returncode}): {tail}")
        audio, rate = sf.read(str(wav_path), dtype="float64", always_2d=True)
    if rate != sample_rate:
        raise SynthError(f"fluidsynth wrote {rate} Hz, asked for {sample_rate} Hz")
    audio = audio.T
    out = []
    for k in range(len(stems)):
        start = int(round(k * spacing_s * sample_rate))
        stem = audio[:, start : start + n]
        if stem.shape[1] < n:
            stem = np.pad(stem, ((0, 0), (0, n - stem.shape[1])))
        out.append(stem)
    return out


def _mix(stems: Sequence[_Stem], audio: Sequence[np.ndarray]) -> np.ndarray:
    """Pan (balance, constant power) and level each stereo stem, and sum."""
    mix = np.zeros_like(audio[0])
    for stem, x in zip(stems, audio):
        angle = (stem.pan + 1.0) * math.pi / 4.0
        gains = np.array([math.cos(angle), math.sin(angle)]) * math.sqrt(2.0) * 10.0 ** (stem.level_db / 20.0)
        mix += x * gains[:, None]
    return mix


def _sounding_share(mix: np.ndarray, sample_rate: int) -> float:
    window = max(1, int(0.1 * sample_rate))
    frames = mix.shape[1] // window
    if frames == 0:
        return 0.0
    power = np.mean(np.square(mix[:, : frames * window]).reshape(2, frames, window), axis=(0, 2))
    top = float(np.max(power))
    if top <= 1e-12:
        return 0.0
    return float(np.mean(power >= top * 10.0 ** (-SOUNDING_RANGE_DB / 10.0)))


def _finish(mix: np.ndarray, sample_rate: int) -> np.ndarray:
    """DC removed, short fades at both ends, then the sample peak set to :data:`PEAK_DBFS`."""
    n_in, n_out = int(FADE_IN_S * sample_rate), int(FADE_OUT_S * sample_rate)
    mix = mix - np.mean(mix, axis=1, keepdims=True)  # some soundfont samples carry DC
    if 0 < n_in < mix.shape[1]:
        mix[:, :n_in] *= np.linspace(0.0, 1.0, n_in)
    if 0 < n_out < mix.shape[1]:
        mix[:, -n_out:] *= np.linspace(1.0, 0.0, n_out)
    peak = float(np.max(np.abs(mix)))
    return mix * (10.0 ** (PEAK_DBFS / 20.0) / peak)


# ---------------------------------------------------------------------------- public rendering


def render_clip(score_path: str, out_path: Path, *, seed: int, sample_rate: int = 44100,
                duration_s: float = 12.0) -> Path:
    """Render a seeded, re-orchestrated excerpt of a corpus score to a stereo float WAV.

    The same ``score_path``, ``seed``, ``sample_rate`` and ``duration_s`` give the same samples.
    Excerpts that would be near-silent (sparse notes, rests) are rejected and another is
    drawn, up to :data:`MAX_EXCERPT_TRIES` times. The file is written atomically.

    Parameters
    ----------
    score_path : str
        A music21 corpus path, e.g. from :func:`list_scores`.
    out_path : Path
        The WAV file to write (its folder must exist).
    seed : int
        Draws the excerpt, palette and programs, tempo factor, transposition, velocities,
        per-part level and pan, and whether a drum part is added.
    sample_rate : int
        Output rate in Hz (FluidSynth renders at it directly).
    duration_s : float
        Clip length in seconds.

    Returns
    -------
    Path
        ``out_path``: 2 channels, ``round(duration_s * sample_rate)`` frames, 32-bit float,
        sample peak at :data:`PEAK_DBFS`.

    Raises
    ------
    SynthUnavailableError
        FluidSynth, the soundfont or music21 is missing.
    UnusableScoreError
        The score fails to parse, has no notes, or gave no sounding excerpt.
    SynthError
        FluidSynth failed.
    """
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    if not 8000 <= int(sample_rate) <= 192000:
        raise ValueError(f"sample_rate must be 8000..192000 Hz, got {sample_rate!r}")
    exe = require_renderer()
    score = _load_score(score_path)
    rng = np.random.default_rng(seed)
    for attempt in range(MAX_EXCERPT_TRIES):
        factor = rng.uniform(*TEMPO_FACTOR_RANGE)
        base_qpm = score.tempo_qpm or float(np.clip(rng.uniform(66.0, 100.0) * score.beat_ql, 50.0, 160.0))
        qpm = base_qpm * factor
        transpose = int(rng.integers(-TRANSPOSE_SEMITONES, TRANSPOSE_SEMITONES + 1))
        length_ql = duration_s * qpm / 60.0
        # start on a full bar (not a pickup) with a clip's worth of music after it, if any
        room = [i for i, (offset, d) in enumerate(score.bars)
                if offset + length_ql <= score.length_ql and d >= score.bar_ql - 1e-6]
        start_bar = int(rng.choice(room)) if room else 0
        parts, bar_lines = _excerpt(score, start_bar, length_ql)
        coverage = _coverage(parts, length_ql)
        if coverage < MIN_COVERAGE:
            log.debug("%s bar %d: notes sound %.0f%% of the clip, trying another excerpt",
                      score_path, start_bar, 100 * coverage)
            continue
        stems = _arrange(rng, score, parts, bar_lines, qpm, transpose, duration_s)
        if not stems:
            continue
        audio = _render_stems(exe, stems, int(sample_rate), float(duration_s))
        mix = _mix(stems, audio)
        share = _sounding_share(mix, int(sample_rate))
        if share < MIN_SOUNDING:
            log.debug("%s bar %d: sound in %.0f%% of the clip, trying another excerpt",
                      score_path, start_bar, 100 * share)
            continue
        out_path = Path(out_path)
        save(Audio(_finish(mix, int(sample_rate)), int(sample_rate), source=score_path), out_path,
             bit_depth="32f")
        log.debug("%s -> %s (seed %d, bar %d, attempt %d)", score_path, out_path, seed, start_bar, attempt + 1)
        return out_path
    raise UnusableScoreError(f"no sounding excerpt in {MAX_EXCERPT_TRIES} tries", score_path)


def clip_name(seed: int, index: int) -> str:
    """The file name :func:`render_clips` gives clip ``index`` of a run with ``seed``."""
    return f"synth_s{seed}_{index:05d}.wav"


def _clip_order(scores: Sequence[str], seed: int) -> list[str]:
    """The scores in the order clips use them: folders round-robin, shuffled by ``seed``.

    Each corpus folder is shuffled, and so is the order of the folders; taking them in turn
    keeps small collections from being drowned by Palestrina's 1300 masses (2/3 of the list).
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = defaultdict(list)
    for path in scores:
        groups[path.split("/", 1)[0]].append(path)
    columns = [[paths[i] for i in rng.permutation(len(paths))] for _, paths in sorted(groups.items())]
    columns = [columns[i] for i in rng.permutation(len(columns))]
    return [c[row] for row in range(max(len(c) for c in columns)) for c in columns if row < len(c)]


def _clip_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _render_task(task: tuple[int, Path, tuple[str, ...], int, int, float]) -> tuple[int, Path | None]:
    index, path, candidates, clip_seed, sample_rate, duration_s = task
    for score_path in candidates:
        try:
            return index, render_clip(score_path, path, seed=clip_seed, sample_rate=sample_rate,
                                      duration_s=duration_s)
        except UnusableScoreError as exc:
            log.debug("skipping score for clip %d: %s", index, exc)
    log.warning("clip %d: none of %d scores gave a clip", index, len(candidates))
    return index, None


def render_clips(out_dir: Path, count: int, *, seed: int = 0, jobs: int = 2, sample_rate: int = 44100,
                 duration_s: float = 12.0,
                 progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Render ``count`` clips into ``out_dir``, in parallel; resumable and deterministic.

    Clip ``i`` is named :func:`clip_name` ``(seed, i)`` and comes from the score at position
    ``i`` of a seeded ordering of :func:`list_scores` that takes the corpus folders in turn
    (composers and collections; cycling when ``count`` exceeds the list),
    with its own seed derived from ``(seed, i)``; a score that fails to parse or gives no
    sounding excerpt is skipped for the next one (up to :data:`MAX_SCORE_TRIES`). Clips whose
    file already exists are not rendered again, so an interrupted run can simply be repeated.

    Parameters
    ----------
    out_dir : Path
        Folder for the clips (created if missing).
    count : int
        Number of clips.
    seed : int
        Seed of the whole set: the same seed gives the same files.
    jobs : int
        Worker processes, forked where the platform allows (1 renders in this process).
    sample_rate : int
        Output rate in Hz.
    duration_s : float
        Length of each clip in seconds.
    progress : callable, optional
        Called as ``progress(done, total)`` after each clip (rendered or already present).

    Returns
    -------
    list of Path
        The clips in index order; a clip none of whose scores worked is left out (logged).
    """
    require_renderer()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = list_scores()
    if not scores:
        raise SynthUnavailableError("music21's corpus lists no usable score (is its corpus installed?)")
    order = _clip_order(scores, seed)
    paths: dict[int, Path | None] = {}
    tasks = []
    for i in range(max(0, int(count))):
        path = out_dir / clip_name(seed, i)
        if path.is_file():
            paths[i] = path
            continue
        candidates = tuple(order[(i + k) % len(order)] for k in range(min(MAX_SCORE_TRIES, len(scores))))
        tasks.append((i, path, candidates, _clip_seed(seed, i), int(sample_rate), float(duration_s)))
    total, done = int(count), len(paths)
    log.info("rendering %d clips into %s (%d already there, %d jobs)", len(tasks), out_dir, done, jobs)
    if progress is not None and done:
        progress(done, total)
    if jobs <= 1 or len(tasks) <= 1:
        results = map(_render_task, tasks)
        for index, rendered in results:
            paths[index] = rendered
            done += 1
            if progress is not None:
                progress(done, total)
    else:
        # Forked workers: no re-import of the caller's main module (a script needs no
        # ``if __name__ == "__main__"`` guard), and music21 is already loaded.
        context = get_context("fork") if "fork" in get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=context) as pool:
            futures = [pool.submit(_render_task, task) for task in tasks]
            for future in as_completed(futures):
                index, rendered = future.result()
                paths[index] = rendered
                done += 1
                if progress is not None:
                    progress(done, total)
    return [p for i in sorted(paths) if (p := paths[i]) is not None]
