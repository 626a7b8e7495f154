"""The analyzer, the base layer: Audio and its I/O, errors, atomic writes, the loudness and
true-peak meters, the band spectrum, and the Features it all measures. It imports nothing
else of Mixbridge (see ARCHITECTURE.md: assistant -> models -> effects -> analysis)."""
