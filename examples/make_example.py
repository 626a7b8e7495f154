"""Generate examples/groove.flac: 4 bars of drums, bass and chords, mixed like an unmastered home mix.

Deterministic (seeded), synthesised from scratch with numpy/scipy and pedalboard's built-in
reverb and EQ: no samples. The mix is deliberately quiet (about -20 LUFS, -6 dBTP), a little
boomy and dull, so a mastering tool has something to fix. Run: ``python examples/make_example.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pedalboard as pb
import pyloudnorm
import soundfile as sf
from scipy import signal

SEED = 20240611
SR = 44_100
BPM = 118
BARS = 4
STEPS_PER_BAR = 16  # sixteenth notes
TAIL_S = 0.6  # let the last chord and the reverb ring out
STEP_S = 60.0 / BPM / 4
TARGET_LUFS = -20.0
FADE_S = 0.005  # every note starts and ends with at least this fade: no clicks
TIMING_JITTER_S = 0.004  # drum humanisation
VELOCITY_JITTER = 0.12
BASS_CUTOFF_HZ = 650
PAD_CUTOFF_HZ = 2600
CHORD_RING_S = 0.4  # each chord rings this far into the next bar
DRUM_GAIN, BASS_GAIN, CHORD_GAIN = 1.1, 0.5, 0.75
FINAL_FADE_S = 0.3
OUT = Path(__file__).with_name("groove.flac")

# i - VI - III - VII in A minor: Am, F, C, G (MIDI notes; bass root, then the chord voicing)
PROGRESSION = [(45, (57, 60, 64, 69)), (41, (57, 60, 65, 69)), (48, (55, 60, 64, 67)), (43, (55, 59, 62, 67))]
KICK_STEPS = (0, 7, 8, 10)
SNARE_STEPS = (4, 12)
HAT_STEPS = tuple(range(0, 16, 2)) + (11, 15)
# (step, length in steps, semitones above the root)
BASS_PATTERN = ((0, 3, 0), (3, 2, 0), (6, 2, 12), (8, 3, 0), (11, 2, 7), (14, 2, 12))

rng = np.random.default_rng(SEED)


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def fades(x: np.ndarray, attack_s: float = FADE_S, release_s: float = FADE_S) -> np.ndarray:
    """Raised-cosine fade in and out, so nothing starts or stops abruptly (no clicks)."""
    a, r = max(int(attack_s * SR), 1), max(int(release_s * SR), 1)
    env = np.ones(x.shape[-1])
    env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    env[-r:] *= 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r))
    return x * env


def saw(freq: float, n: int, max_hz: float, phase: float = 0.0) -> np.ndarray:
    """Band-limited sawtooth (additive, harmonics below ``max_hz``): no aliasing."""
    t = np.arange(n) / SR
    k = np.arange(1, max(int(max_hz // freq), 1) + 1)
    return (2 / np.pi) * (np.sin(2 * np.pi * freq * np.outer(k, t) + phase * k[:, None]) / k[:, None]).sum(axis=0)


def lowpass(x: np.ndarray, hz: float, order: int = 2) -> np.ndarray:
    return signal.sosfilt(signal.butter(order, hz, "lowpass", fs=SR, output="sos"), x)


def kick(velocity: float) -> np.ndarray:
    t = np.arange(int(0.45 * SR)) / SR
    freq = 48 + 110 * np.exp(-t / 0.035)  # pitch sweep 158 Hz -> 48 Hz
    body = np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.exp(-t / 0.16)
    click = signal.sosfilt(signal.butter(2, 2500, "highpass", fs=SR, output="sos"),
                           rng.standard_normal(t.size)) * np.exp(-t / 0.003)
    return fades(velocity * (body + 0.25 * click), attack_s=0.0005, release_s=0.05)


def snare(velocity: float) -> np.ndarray:
    t = np.arange(int(0.3 * SR)) / SR
    noise = signal.sosfilt(signal.butter(2, (1500, 7000), "bandpass", fs=SR, output="sos"),
                           rng.standard_normal(t.size)) * np.exp(-t / 0.07)
    tone = (np.sin(2 * np.pi * 185 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) * np.exp(-t / 0.045)
    return fades(velocity * (0.8 * noise + 0.5 * tone), attack_s=0.0005, release_s=0.04)


def hat(velocity: float) -> np.ndarray:
    t = np.arange(int(0.09 * SR)) / SR
    noise = signal.sosfilt(signal.butter(4, 7000, "highpass", fs=SR, output="sos"), rng.standard_normal(t.size))
    return fades(velocity * 0.5 * noise * np.exp(-t / 0.018), attack_s=0.0005, release_s=0.02)


def bass_note(note: int, length_s: float) -> np.ndarray:
    n = int(length_s * SR)
    t = np.arange(n) / SR
    f = midi_hz(note)
    square = 0.5 * (saw(f, n, 3000) - saw(f, n, 3000, phase=np.pi))  # odd harmonics only
    tone = lowpass(0.8 * saw(f, n, 3000) + 0.2 * square, BASS_CUTOFF_HZ, order=2)
    env = 0.75 + 0.25 * np.exp(-t / 0.08)  # pluck, then sustain
    return fades(tone * env, attack_s=0.003, release_s=0.03)


def chord(notes: tuple[int, ...], length_s: float) -> np.ndarray:
    """A soft pad: three detuned saws per note, low-passed, voices spread across the stereo field."""
    n = int(length_s * SR)
    out = np.zeros((2, n))
    for note in notes:
        for cents, pan in ((-9, 0.05), (0, 0.5), (8, 0.95)):
            voice = saw(midi_hz(note + cents / 100), n, 5000, phase=rng.uniform(0, 2 * np.pi))
            out[0] += np.cos(pan * np.pi / 2) * voice
            out[1] += np.sin(pan * np.pi / 2) * voice
    out = lowpass(out, PAD_CUTOFF_HZ, order=2) / (3 * len(notes))
    return fades(out, attack_s=0.06, release_s=0.35)


def place(mix: np.ndarray, sound: np.ndarray, start_s: float, pan: float = 0.5) -> None:
    """Add a mono (panned, constant power) or stereo sound into ``mix`` at ``start_s``."""
    start = max(int(round(start_s * SR)), 0)
    stereo = sound if sound.ndim == 2 else np.outer((np.cos(pan * np.pi / 2), np.sin(pan * np.pi / 2)), sound)
    end = min(start + stereo.shape[1], mix.shape[1])
    mix[:, start:end] += stereo[:, : end - start]


def human(t: float) -> float:
    return t + rng.normal(0, TIMING_JITTER_S)


def vel() -> float:
    return 1.0 - VELOCITY_JITTER * rng.random()


def render() -> tuple[np.ndarray, np.ndarray]:
    """The mix at TARGET_LUFS, and its tonal part (bass + chords) for the click check."""
    bar_s = STEPS_PER_BAR * STEP_S
    n = int((BARS * bar_s + TAIL_S) * SR)
    drums, bass, chords = (np.zeros((2, n)) for _ in range(3))
    for bar, (root, voicing) in enumerate(PROGRESSION[:BARS]):
        t0 = bar * bar_s
        for s in KICK_STEPS:
            place(drums, kick(vel() * (0.7 if s % 4 else 1.0)), human(t0 + s * STEP_S))
        for s in SNARE_STEPS:
            place(drums, snare(vel()), human(t0 + s * STEP_S), pan=0.47)
        for s in HAT_STEPS:
            place(drums, hat(vel() * (1.0 if s % 4 == 0 else 0.6)), human(t0 + s * STEP_S), pan=0.62)
        for step, length, interval in BASS_PATTERN:
            place(bass, bass_note(root + interval, length * STEP_S * 0.9), t0 + step * STEP_S + rng.normal(0, 0.002))
        place(chords, chord(voicing, bar_s + CHORD_RING_S), t0)

    room = pb.Pedalboard([pb.Reverb(room_size=0.55, damping=0.6, wet_level=0.28, dry_level=0.8, width=1.0)])
    chords = room(chords.astype(np.float32), SR).astype(np.float64)
    # The "home mix" tone: boomy low-mids, dull top, and a DC/subsonic high-pass.
    tone = pb.Pedalboard([
        pb.HighpassFilter(cutoff_frequency_hz=25),
        pb.PeakFilter(cutoff_frequency_hz=200, gain_db=4.0, q=0.8),
        pb.HighShelfFilter(cutoff_frequency_hz=4500, gain_db=-3.5, q=0.7),
    ])
    tonal = BASS_GAIN * bass + CHORD_GAIN * chords
    mix, tonal = (fades(tone(x.astype(np.float32), SR).astype(np.float64), 0.002, FINAL_FADE_S)
                  for x in (DRUM_GAIN * drums + tonal, tonal))
    gain = 10 ** ((TARGET_LUFS - pyloudnorm.Meter(SR).integrated_loudness(mix.T)) / 20)
    return mix * gain, tonal * gain


def to_16_bit(x: np.ndarray) -> np.ndarray:
    """TPDF dither (±1 LSB) and round to the 16-bit grid."""
    lsb = 2.0 ** -15
    dither = (rng.random(x.shape) - rng.random(x.shape)) * lsb
    return np.clip(np.round((x + dither) / lsb), -32768, 32767).astype(np.int16)


def report(x: np.ndarray, tonal: np.ndarray) -> None:
    true_peak = np.abs(signal.resample_poly(x, 4, 1, axis=1)).max()
    print(f"{OUT.name}: {x.shape[1] / SR:.2f} s, {OUT.stat().st_size / 1e6:.2f} MB")
    print(f"  integrated loudness {pyloudnorm.Meter(SR).integrated_loudness(x.T):6.2f} LUFS")
    print(f"  sample peak {20 * np.log10(np.abs(x).max()):6.2f} dBFS, true peak {20 * np.log10(true_peak):6.2f} dBTP")
    print(f"  DC offset L/R {x[0].mean():+.1e} / {x[1].mean():+.1e}, clipped samples {int((np.abs(x) >= 1).sum())}")
    f, p = signal.welch(x.mean(axis=0), SR, nperseg=8192)
    for lo, hi in ((20, 60), (60, 250), (250, 2000), (2000, 6000), (6000, 16000)):
        band = p[(f >= lo) & (f < hi)].sum() * (f[1] - f[0])
        print(f"  band {lo:>5}-{hi:<5} Hz {10 * np.log10(band):6.1f} dB")
    # Bass and pad hold nothing above 5 kHz; a click at a note boundary would be broadband.
    hf = signal.sosfilt(signal.butter(8, 10000, "highpass", fs=SR, output="sos"), tonal)
    print(f"  click check: bass+chords above 10 kHz peak at {20 * np.log10(np.abs(hf).max() / np.abs(tonal).max()):.1f} dB"
          " re their peak (a click would read above -40 dB)")


def main() -> None:
    mix, tonal = render()
    sf.write(OUT, to_16_bit(mix).T, SR, subtype="PCM_16", format="FLAC", compression_level=1.0)
    report(sf.read(OUT, always_2d=True)[0].T, tonal)


if __name__ == "__main__":
    main()
