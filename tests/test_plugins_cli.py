"""`vader plugins`, `vader plugins NAME`, `--json` and the `vader eval` table, read at 80 columns."""

from __future__ import annotations

import io
import json

from rich.console import Console

from vader_core.evaluate import print_table
from vader_core.testing import run_cli


def test_listing_fits_80_columns_one_line_per_plugin():
    rc, out, err = run_cli(["plugins"])
    assert rc == 0, err
    lines = out.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    row = next(ln for ln in lines if ln.split()[:1] == ["temporal_smoothness"])
    assert "vader" in row and row.rstrip().endswith("…")  # the summary is cut, not wrapped
    assert "rewards" in lines and "backbones" in lines


def test_one_plugin_shows_options_with_types_defaults_descriptions():
    rc, out, err = run_cli(["plugins", "target_color"])
    assert rc == 0, err
    assert out.startswith("reward target_color (vader ")
    assert "--set rewards.N.OPTION=VALUE" in out
    rc, js, _ = run_cli(["plugins", "target_color", "--json"])
    (row,) = json.loads(js)
    assert row["details"]["scores"] == "frames" and row["details"]["value_range"] == [-1.0, 0.0]
    for o in row["options"]:
        assert o["name"] in out and o["type"] and o["description"]
        assert o["description"].split()[0] in out
    rc, out, err = run_cli(["plugins", "tiny", "--json"])
    opts = {o["name"]: o for o in json.loads(out)[0]["options"]}
    assert opts["steps"] == {"name": "steps", "type": "int", "default": 4, "description": "Denoising steps."}
    assert opts["model"]["type"] == "str | None" and opts["model"]["default"] is None


def test_json_listing_carries_the_same_schema():
    rc, out, err = run_cli(["plugins", "--json"])
    rows = {(r["name"], r["kind"]): r for r in json.loads(out)}
    rc, one, _ = run_cli(["plugins", "tiny", "--json"])
    assert rows[("tiny", "backbone")] == json.loads(one)[0]


def test_unknown_plugin_name_is_one_line():
    rc, _, err = run_cli(["plugins", "brightnes"])
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no plugin named `brightnes`; did you mean `brightness`?" in err


def _eval_data(models, scores):
    return {
        "backbone": "tiny",
        "prompts": ["a", "b"],
        "seeds": [0, 1],
        "models": [
            {"model": m, "scores": {s: {"mean": 0.123456, "std": 0.0123, "n": 4} for s in scores}} for m in models
        ],
    }


def test_eval_table_never_wraps_a_number_at_80_columns():
    buf = io.StringIO()
    con = Console(file=buf, width=80, highlight=False)
    names = ["brightness", "saturation", "temporal_smoothness", "toy_color", "motion"]
    print_table(_eval_data(["base", "step-30@0.5", "step-30@1"], names), con)
    text = buf.getvalue()
    assert max(len(ln) for ln in text.splitlines()) <= 80
    assert text.count("0.1235 ± 0.0123") == 15  # each number whole, on one line
    buf = io.StringIO()
    print_table(_eval_data(["base", "lora"], ["brightness", "saturation"]), Console(file=buf, width=80))
    wide = buf.getvalue().splitlines()
    assert any(ln.split()[:1] == ["base"] and ln.count("±") == 2 for ln in wide)  # fits: one row per model
