"""``sslad eval`` and the end of ``sslad train``: score a test split with a detector; the only writer of
``metrics.json`` and ``scores.csv``."""

from __future__ import annotations

from pathlib import Path

from sslad.config import DEFAULT_DEVICE
from sslad.data import ImageSet
from sslad.detector import Detector
from sslad.errors import SsladError
from sslad.files import make_output_dir
from sslad.report import save_report, write_json, write_scores
from sslad.scoring import decision_metrics, image_metrics, pixel_metrics


def evaluate_set(detector: Detector, test: ImageSet | None, out_dir: Path, extra: dict | None = None) -> dict:
    """Score ``test`` and write ``metrics.json`` (+ ``scores.csv`` and ``report.png``) into ``out_dir``.

    ``metrics.json``: image AUROC (overall, per type), pixel AUROC (overall, per type) and AUPRO
    when the split has masks and the model maps, the stored thresholds, what the image threshold
    does on the split (false-positive rate on good images, recall on defective ones), and the
    F1-optimal threshold, which uses the test labels (a diagnostic, not a calibration).
    Without a test split it still holds the thresholds and ``extra`` (AUROC null).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"image_auroc": None, "per_type_auroc": {}, "counts": {}}
    threshold = detector.threshold
    if test is not None and len(test) > 0:
        det = detector.score(test.images, progress="score test")
        metrics = image_metrics(test.types, det.scores)
        if det.maps is not None and test.masks is not None:
            metrics.update(pixel_metrics(test.types, det.maps.numpy(), test.masks.numpy()))
        metrics.update(decision_metrics(test.types, det.scores, threshold))
        write_scores(out_dir / "scores.csv", test.paths, test.types, det.scores, threshold)
        save_report(out_dir / "report.png", metrics, test.types, det.scores, threshold, det.images, det.maps,
                    detector.map_range, detector.pixel_threshold, masks=test.masks,
                    untrained=(extra or {}).get("untrained"))
    metrics.update({"threshold": threshold, "threshold_quantile": detector.scorer.quantile,
                    "threshold_rule": detector.scorer.threshold_rule,
                    "pixel_threshold": detector.pixel_threshold, "map_range": detector.map_range})
    metrics.update(extra or {})
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def evaluate_run(run_dir: str | Path, data_path: str, category: str | None, out_dir: str | Path | None,
                 device: str = DEFAULT_DEVICE, extra: dict | None = None, detector: Detector | None = None) -> dict:
    """``sslad eval``: re-score the test split of ``data_path`` with the run's detector (``extra`` joins
    metrics.json: the training's summary when ``sslad train --resume`` finishes a run's cut scoring, which passes
    the ``detector`` it has already loaded; otherwise it is loaded from ``run_dir`` onto ``device``)."""
    from sslad.checkpoint import run_folder
    from sslad.data import load_dataset

    run_dir = run_folder(run_dir)
    out = make_output_dir(out_dir if out_dir is not None else run_dir / "eval", "--out")
    detector = detector if detector is not None else Detector.load(run_dir, device)
    data = load_dataset(data_path, category, detector.image_size, device="cpu", splits=("test",))
    if data.test is None or len(data.test) == 0:
        raise SsladError(f"{data_path} has no readable test images to evaluate")
    skipped = [{"path": p, "error": reason} for p, reason in data.skipped]
    return evaluate_set(detector, data.test, out, extra={"dataset": data.name, "run_dir": str(run_dir),
                                                         "skipped_images": skipped, **(extra or {})})
