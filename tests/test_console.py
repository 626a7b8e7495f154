"""The CLI's progress: plain lines when piped (thinned to tenths of a count), nothing with
--quiet, a rich bar on a terminal; every option of every command has help text."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

from mixbridge.assistant.cli import build_parser
from mixbridge.assistant.console import Reporter


def test_lines_are_thinned_to_tenths_of_a_count():
    out = io.StringIO()
    report = Reporter("lines", out)
    report("analysing")
    for done in range(0, 1001):
        report("rendering", done, 1000)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("analysing")
    assert len(lines) == 1 + 11  # 0 %, 10 %, ..., 100 %
    assert lines[-1].endswith("rendering (100 %)")


def test_quiet_prints_nothing_and_a_bar_draws_on_its_stream():
    out = io.StringIO()
    Reporter("quiet", out)("rendering", 5, 10)
    assert out.getvalue() == ""
    bar = io.StringIO()
    with Reporter("bar", bar) as report:
        report("rendering", 5, 10)
        report("writing", 10, 10)
    assert Reporter.for_terminal(quiet=True).mode == "quiet"


def test_the_cli_is_quiet_with_quiet(tmp_path):
    import numpy as np
    import soundfile as sf
    from test_master import groove

    mix = tmp_path / "mix.wav"
    sf.write(str(mix), np.tile(groove(22050, 5.0), 2).T, 22050, subtype="PCM_24")
    args = [sys.executable, "-m", "mixbridge.assistant.cli", "master", str(mix), "-o", str(tmp_path / "m.wav")]
    loud = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "rendering" in loud.stderr  # piped: plain progress lines
    quiet = subprocess.run([*args, "--overwrite", "--quiet"], capture_output=True, text=True, check=True)
    assert quiet.stderr == "" and "integrated loudness" in quiet.stdout


def test_every_option_of_every_command_has_help():
    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "mixbridge")
    assert missing == []


def test_help_imports_none_of_the_pipelines():
    """`mixbridge --help` builds the commands by name only: no numpy, no scipy, no pedalboard."""
    code = ("import sys; from mixbridge.assistant.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'scipy', 'pedalboard', 'mixbridge.assistant.judge') if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_tables_are_rich_on_a_terminal_and_plain_when_piped():
    from mixbridge.assistant.console import print_rows

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    rows = [("integrated loudness", "-14.0 LUFS"), ("true peak", "-1.00 dBTP")]
    piped, terminal = io.StringIO(), Terminal()
    print_rows(rows, ["a note"], "PLAIN TEXT", piped)
    print_rows(rows, ["a note"], "PLAIN TEXT", terminal)
    assert piped.getvalue() == "PLAIN TEXT\n"
    drawn = terminal.getvalue()
    assert "PLAIN TEXT" not in drawn and "integrated loudness" in drawn and "-1.00 dBTP" in drawn
    assert "note: a note" in drawn


def test_markdown_tables_are_drawn_on_a_terminal_and_kept_when_piped():
    from mixbridge.assistant.console import print_lines
    from mixbridge.assistant.text import metrics_table

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    lines = ["held-out files: 2", *metrics_table({"dsp": {"mrstft_ratio": 0.61}, "model": {"mrstft_ratio": 0.42}},
                                                ["dsp", "model"], ["mrstft_ratio"]), "done"]
    piped, terminal = io.StringIO(), Terminal()
    print_lines(lines, piped)
    print_lines(lines, terminal)
    assert piped.getvalue() == "\n".join(lines) + "\n"
    drawn = terminal.getvalue()
    assert "| --- |" not in drawn and "held-out files: 2" in drawn and drawn.rstrip().endswith("done")
    row = next(line for line in drawn.splitlines() if "mrstft_ratio" in line)
    assert "0.610" in row and "0.420" in row and "│" in row  # one aligned row, drawn with rich's box lines
