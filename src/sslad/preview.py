"""``sslad preview``: render the first samples of a run's regeneration 0 and save them as PNGs.

The plan is exactly the one training with the same seed and synth flags would use first, so
``preview`` shows what the model will see; ``plan.json`` holds every sampled parameter, and two
backends given the same seed write the same ``plan.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from sslad.backends import make_renderer
from sslad.config import PREVIEW_COUNT, RunConfig
from sslad.data import load_dataset, split_train
from sslad.files import make_output_dir
from sslad.report import save_grid
from sslad.runtime import resolve_device
from sslad.synth import CLASS_NAMES
from sslad.synth.generator import PretextGenerator


def preview(cfg: RunConfig, out_dir: str | Path, count: int = PREVIEW_COUNT) -> dict:
    cfg = cfg.validate()
    out = make_output_dir(out_dir, "--out")
    device = resolve_device(cfg.train.device)
    data = load_dataset(cfg.data.path, cfg.data.category, cfg.data.image_size, device=device, splits=("train",))
    fit, _ = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)  # what training renders from
    renderer = make_renderer(cfg.synth.backend, cfg.data.image_size, device)
    gen = PretextGenerator(fit.images, renderer, cfg.synth, seed=cfg.train.seed)
    plan = gen.plan(0)
    count = min(count, len(plan))
    groups = plan.rows(slice(0, 3 * ((count + 2) // 3)))  # renderers work on whole groups
    images, masks = (t.cpu()[:count] for t in renderer.render(groups, gen.padded))
    plan = plan.rows(slice(0, count))
    (out / "samples").mkdir(exist_ok=True)
    from PIL import Image

    # plan.json describes the plan only, so two backends given the same seed write the same file;
    # which backend rendered the PNGs goes to preview.json.
    meta = plan.to_json()
    meta.update({"seed": cfg.train.seed, "scar": cfg.synth.scar, "color": gen.color, "dataset": data.name})
    for i, row in enumerate(meta["samples"]):
        row["file"] = f"samples/{i:04d}_{row['class']}.png"
        row["mask"] = f"samples/{i:04d}_{row['class']}_mask.png"
        row["source"] = fit.paths[row["index"]]
        row["blend_source"] = fit.paths[row["blend_index"]]  # where a blend row's blob content comes from
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(out / row["file"])
        Image.fromarray(masks[i].numpy() * 255).save(out / row["mask"])
    (out / "plan.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / "preview.json").write_text(json.dumps({"backend": renderer.name, "device": str(device),
                                                  "count": len(plan)}, indent=1) + "\n")
    for c, name in enumerate(CLASS_NAMES):
        sel = plan.label == c
        if bool(sel.any()):
            save_grid(out / f"grid_{name}.png", images[sel])
    return {"count": len(plan), "backend": renderer.name, "out": str(out)}


__all__ = ["preview"]
