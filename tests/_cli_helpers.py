"""Helpers shared by the CLI tests: run ``aekit`` in-process and check a clean failure."""

from __future__ import annotations

from aekit.cli.main import main as cli_main


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Run ``aekit ARGV`` in this process: (exit code, stdout + stderr)."""
    code = cli_main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def assert_fails(capsys, argv, *words) -> str:
    """Exit code 2, no traceback, and every word in the output (case-insensitive)."""
    code, text = run_cli(capsys, *argv)
    assert code == 2, f"exit code {code}:\n{text}"
    assert "Traceback" not in text, text
    flat = " ".join(text.split()).lower()
    for word in words:
        assert word.lower() in flat, f"{word!r} not in {text!r}"
    return text
