"""Every bad data file is one line naming the file (and the line, for jsonl) and the
cause, and nothing is half-written: corpus files through `ladder corpus`, and tables
from outside through `ladder fit`. Issue #12's cases, one row each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ladder import data as D
from ladder.fit import cli as fit_cli

LATIN1 = "un café noir\n".encode("latin-1")  # é is byte 6, 0xe9: not UTF-8


def binary(d: Path) -> str:
    (d / "image.txt").write_bytes(bytes(range(256)) * 8)
    return "image.txt"


def latin1_txt(d: Path) -> str:
    (d / "notes.txt").write_bytes(LATIN1)
    return "notes.txt"


def latin1_jsonl(d: Path) -> str:
    good = json.dumps({"text": "fine"}).encode() + b"\n"
    (d / "docs.jsonl").write_bytes(good + b'{"text": "' + LATIN1.strip() + b'"}\n')
    return "docs.jsonl"


def malformed_jsonl(d: Path) -> str:
    lines = [json.dumps({"text": f"doc {i}"}) for i in range(3)] + ['{"text": "no end}']
    (d / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return "docs.jsonl"


def jsonl_not_object(d: Path) -> str:
    (d / "docs.jsonl").write_text('{"text": "a"}\n["b"]\n')
    return "docs.jsonl"


def jsonl_missing_field(d: Path) -> str:
    (d / "docs.jsonl").write_text('{"text": "a"}\n{"body": "b"}\n')
    return "docs.jsonl"


def jsonl_field_not_text(d: Path) -> str:
    (d / "docs.jsonl").write_text('{"text": "a"}\n{"text": 7}\n')
    return "docs.jsonl"


def cut_utf8(d: Path) -> str:
    (d / "cut.txt").write_bytes("naïve".encode()[:3])  # a 2-byte character, cut
    return "cut.txt"


def not_parquet(d: Path) -> str:
    (d / "table.parquet").write_text("just text")
    return "table.parquet"


# (case, writer, fragments after the file's path)
CASES = [
    ("binary-txt", binary, ["NUL byte at byte 0", "binary file, not text"]),
    ("latin1-txt", latin1_txt, ["not UTF-8 at byte 6", "\\xe9", "re-encode it as UTF-8"]),
    ("latin1-jsonl", latin1_jsonl, [", line 2: not UTF-8 at byte 33", "re-encode"]),
    (
        "malformed-jsonl",
        malformed_jsonl,
        [", line 4: invalid JSON at column 18", "ends inside a string"],
    ),
    ("jsonl-not-object", jsonl_not_object, [", line 2: a JSON list, not an object"]),
    ("jsonl-missing-field", jsonl_missing_field, [", line 2: no text field 'text'", "body"]),
    ("jsonl-field-not-text", jsonl_field_not_text, [", line 2: field 'text'", "int, not text"]),
    ("utf8-cut-at-end", cut_utf8, ["not UTF-8 at byte 2", "cut off by the end"]),
    ("not-parquet", not_parquet, ["not a readable parquet file"]),
]


@pytest.mark.parametrize("write, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_corpus_file_is_one_line_naming_it(write, fragments, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    name = write(src)
    out = tmp_path / "corpus"
    data = {"source": "files", "paths": [str(src / "*")]}
    rc = D.main(["--data-json", json.dumps(data), "--out-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"ladder corpus: data error: {src / name}"), err[0]
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    assert not out.exists()  # no corpus, not even an empty folder


def test_good_files_pass_the_checks(tmp_path):
    (tmp_path / "a.txt").write_text("naïve café, ünïcode\n")
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n\n{"text": "y", "id": 2}\n')
    D.check_source_file(tmp_path / "a.txt", "text")
    D.check_source_file(tmp_path / "b.jsonl", "text")
    # a character cut by a read chunk's end is still valid (the decoder carries it over)
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (D.READ_CHUNK - 1) + "é".encode() + b"z")
    D.check_text_file(big)
    big.write_bytes(b"a" * (D.READ_CHUNK - 1) + "é".encode()[:1] + b"z")
    with pytest.raises(D.DataError, match=f"not UTF-8 at byte {D.READ_CHUNK - 1}"):
        D.check_text_file(big)


# ----------------------------------------------------------------------------- ladder fit


def runs_table(changes: dict | None = None) -> pd.DataFrame:
    n = np.array([1e5, 2e5, 4e5, 8e5, 1.6e6, 3.2e6])
    df = pd.DataFrame(
        {
            "rung": [f"r{i}" for i in range(len(n))],
            "params_non_embedding": n,
            "tokens": 20 * n,
            "loss_nats": 2 + 30 * n**-0.3,
        }
    )
    for (col, row), value in (changes or {}).items():
        df.loc[row, col] = value
    return df


def test_constant_loss_is_an_error_not_a_fit(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    runs_table({("loss_nats", i): 3.0 for i in range(6)}).to_csv(csv, index=False)
    rc = fit_cli.main([str(csv), "--law", "all", "--bootstrap", "0", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "'loss_nats' is 3 in every usable run" in err[0] and "no trend" in err[0]
    assert not (tmp_path / "f").exists()


def test_infinite_loss_is_named_infinite_and_warned_on_stderr(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    runs_table({("loss_nats", 2): np.inf, ("loss_nats", 3): np.nan}).to_csv(csv, index=False)
    fits = tmp_path / "fits.json"
    rc = fit_cli.main([str(csv), "--law", "power", "--bootstrap", "0", "--out", str(fits)])
    err = capsys.readouterr().err
    assert rc == 0
    assert "warning: excluded 1 run(s) with an infinite loss: r2" in err
    assert "warning: excluded 1 run(s) with NaN loss: r3" in err
    law = json.loads(fits.read_text())["laws"]["power_params"]
    assert law["rows"] == ["r0", "r1", "r4", "r5"]  # no NaN or inf in a fitted row


def test_bad_value_is_shown_as_written(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    runs_table({("params_non_embedding", 1): -1.0}).to_csv(csv, index=False)
    rc = fit_cli.main([str(csv), "--law", "power", "--bootstrap", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "(first: r1 = -1)" in err and "np.float64" not in err


def test_law_warnings_reach_stderr(tmp_path, capsys):
    """A law's own warnings (an offset at its bound, ...) are printed, not only in JSON."""
    csv = tmp_path / "runs.csv"
    df = runs_table()
    df["loss_nats"] = 30 * df["params_non_embedding"] ** -0.3  # no irreducible loss
    df.to_csv(csv, index=False)
    fits = tmp_path / "fits.json"
    assert fit_cli.main([str(csv), "--law", "power", "--bootstrap", "0", "--out", str(fits)]) == 0
    law = json.loads(fits.read_text())["laws"]["power_params"]
    err = capsys.readouterr().err
    for w in law["warnings"]:
        assert f"ladder fit: warning: power_params: {w}" in err
