"""The discrepancy map of a distilled student under each distance: cosine (what the map used through 0.3) and
the squared error in the teacher's per-channel std (what a standardising student learns).

Usage:
    python benchmarks/discrepancy_metric.py NAME STUDENT_RUN [STUDENT_RUN ...]

For every student run (``sslad distill``), the maps of the test split under both distances (layer1-3,
averaged, upsampled and smoothed as every map): pixel AUROC, AUPRO and image AUROC of the map maximum.
Writes ``benchmarks/results/NAME.json`` with machine info.
"""

from __future__ import annotations

import sys

import torch


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    from common import load_run, save_record

    from sslad.distill import load_teacher, teacher_features
    from sslad.models.pair import mean_distance
    from sslad.scoring import image_metrics, pixel_metrics, to_image_maps

    rows = []
    for run in argv[1:]:
        student, _, ckpt, cfg, data, _, _ = load_run(run)
        teacher, _ = load_teacher(ckpt["extra"]["teacher"]["path"], torch.device("cpu"))
        stats = student.target_stats()
        test, size = data.test, cfg.data.image_size
        maps = {"cosine": [], "standardized": []}
        with torch.no_grad():
            for i in range(0, len(test.images), 32):
                x = test.images[i:i + 32]
                t, _ = teacher_features(teacher, x)
                s = student.distill_features(x)[0]
                maps["cosine"].append(to_image_maps(mean_distance(s, t), size))
                if stats is not None:
                    maps["standardized"].append(to_image_maps(mean_distance(s, t, stats), size))
        row = {"run": run, "student": ckpt["extra"]["distill"]}
        for k, parts in maps.items():
            if not parts:
                continue
            m = torch.cat(parts).numpy()
            pix = pixel_metrics(test.types, m, test.masks.numpy())
            row[k] = {"pixel_auroc": pix["pixel_auroc"], "aupro": pix["aupro"],
                      "image_auroc": image_metrics(test.types, m.reshape(len(m), -1).max(1))["image_auroc"]}
            print(run, k, {a: round(b, 4) for a, b in row[k].items()})
        rows.append(row)
    save_record(argv[0], {"command": " ".join(["python", "benchmarks/discrepancy_metric.py", *argv]), "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
