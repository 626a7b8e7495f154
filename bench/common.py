"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

BLOCK_FRAMES = 1 << 18  # for copying files without holding them in memory


def cut_audio(src: Path, seconds: float, dest: Path) -> tuple[Path, str]:
    """Write the first ``seconds`` of ``src`` to ``dest`` block by block (0: the whole file).

    Returns the written path and its subtype (PCM_16/PCM_24/FLOAT kept, else PCM_24).
    """
    meta = sf.info(str(src))
    frames = int(seconds * meta.samplerate) if seconds > 0 else meta.frames
    subtype = meta.subtype if meta.subtype in ("PCM_16", "PCM_24", "FLOAT") else "PCM_24"
    with sf.SoundFile(str(src)) as f, sf.SoundFile(str(dest), "w", meta.samplerate, meta.channels, subtype) as out:
        while frames > 0:
            block = f.read(min(BLOCK_FRAMES, frames), dtype="float32", always_2d=True)
            if not len(block):
                break
            out.write(block)
            frames -= len(block)
    return dest, subtype


def publish(lines: list[str], path: Path) -> None:
    """Print a benchmark's markdown report and save it to ``path``."""
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"saved to {path}")
