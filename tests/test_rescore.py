"""``sslad rescore``: a finished run's scorer fitted again with other scoring settings, the network unchanged."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from sslad.cli import cli


def _invoke(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rescore_without_flags_reproduces_the_run_and_with_one_changes_only_it(tiny_run, tmp_path):
    """With no flag, rescore runs the end of sslad train again on the run's own split, seed and settings: the
    same scores to the digit, the same thresholds. With ``--map-weight 0.25`` the join moves (stored, recorded)
    and the image scores do not (the default image score is the embedding's). The original run is untouched."""
    import sslad

    run, _ = tiny_run
    before = _digest(run / "model.pt")
    same, weighted = tmp_path / "same", tmp_path / "w"
    res = _invoke(["rescore", str(run), "--out", str(same)])
    assert res.exit_code == 0, res.output
    assert "against the run as scored before: image AUROC" in res.output
    assert (same / "scores.csv").read_text() == (run / "scores.csv").read_text()
    m, original = (json.loads((d / "metrics.json").read_text()) for d in (same, run))
    assert m["threshold"] == original["threshold"] and m["pixel_threshold"] == original["pixel_threshold"]
    assert m["rescored_from"] == str(run) and m["score_overrides"] == {}
    res = _invoke(["rescore", str(run), "--out", str(weighted), "--map-weight", "0.25"])
    assert res.exit_code == 0, res.output
    m = json.loads((weighted / "metrics.json").read_text())
    assert m["map_weight_chosen"] == 0.25 and m["score_overrides"] == {"map_weight": 0.25}
    assert m["image_auroc"] == original["image_auroc"] and m["pixel_auroc"] != original["pixel_auroc"]
    det = sslad.load(weighted)
    assert det.scorer.map_weight == 0.25
    assert _digest(run / "model.pt") == before


@pytest.mark.parametrize(("args", "message"), [
    (["--map-weight", "2"], "--map-weight is the per-pixel head's share of the joined map, in [0, 1], or auto"),
    (["--tile", "5"], "--tile must be 0 (whole images) or lie in"),
])
def test_rescore_bad_flags_give_one_clear_line_and_no_folder(tiny_run, tmp_path, args, message):
    out = tmp_path / "bad"
    res = _invoke(["rescore", str(tiny_run[0]), "--out", str(out), *args])
    assert res.exit_code != 0 and message in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not out.exists()


def test_rescore_api_refuses_settings_a_refit_cannot_change(tiny_run, tmp_path):
    import sslad
    from sslad.errors import SsladError

    with pytest.raises(SsladError, match="holdout cannot change without training again"):
        sslad.rescore(tiny_run[0], tmp_path / "h", holdout=0.2)
    with pytest.raises(SsladError, match="unknown key.* in config section 'score': map_wieght"):
        sslad.rescore(tiny_run[0], tmp_path / "u", map_wieght=0.2)
    with pytest.raises(SsladError, match="config key score.tile: expected a whole number"):
        sslad.rescore(tiny_run[0], tmp_path / "t", tile="wide")
    assert not any((tmp_path / d).exists() for d in ("h", "u", "t"))
