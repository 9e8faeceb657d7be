"""`vae-ros eval`: metrics of a model directory on a bag topic or an image folder, plus PNG plots.

    vae-ros eval --model trained/my_camera --bag BAG --topic /camera/image_raw --out eval/
    vae-ros eval --model models/my_scan --bag BAG --topic /scan --out eval/ --split val

Prints a table (ELBO, reconstruction error, KL, active units) and writes into --out: metrics.json,
reconstructions.png, traversals.png (top active latent dimensions swept over [-3, 3]) and kl_per_dim.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vae_ros.apps.cli.common import add_data_arguments, positive_int, remove_if_empty, setup_logging


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="DIR", default="",
                        help="model directory (default: the packaged model for the data's modality)")
    add_data_arguments(parser)
    parser.add_argument("--out", metavar="DIR", required=True, help="folder for metrics.json and the PNGs")
    parser.add_argument("--split", choices=("all", "train", "val"), default="all",
                        help="which samples: all (a new recording), or the train / val split of the "
                             "model's training data (all)")
    parser.add_argument("--val-percent", type=float, default=None,
                        help="validation share used to split (default: the model's training setting, or 10)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="evaluate at most N samples")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="batch size (64)")
    parser.add_argument("--top-k", type=positive_int, default=4, metavar="K",
                        help="latent dimensions to traverse, most active first (4)")
    parser.add_argument("--examples", type=positive_int, default=8, help="reconstructions to plot (8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ELBO's latent sample (0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vae_ros.core.data import open_source
    from vae_ros.core.evaluate import format_table, run_evaluation
    from vae_ros.core.model_dir import load_model_dir, resolve_model_dir
    from vae_ros.core.train import select_device

    setup_logging("eval")
    select_device(args.device)
    source = open_source(args.bag, args.topic, args.images)
    model_dir = resolve_model_dir(args.model, source.modality)
    config, model = load_model_dir(model_dir, device=args.device)
    val_percent = args.val_percent
    if val_percent is None:
        val_percent = float(config.training.get("train_config", {}).get("val_percent", 10.0))
    out_dir = Path(args.out).expanduser()
    created = not out_dir.exists()
    try:
        report = run_evaluation(model, model_dir, source, out_dir, batch_size=args.batch_size,
                                split=args.split, val_percent=val_percent, limit=args.limit, top_k=args.top_k,
                                examples=args.examples, seed=args.seed, device=args.device,
                                progress=not args.quiet)
    except BaseException:
        if created:
            remove_if_empty(out_dir)
        raise
    print(f"model {model_dir} on {source.label()} ({args.split}, {report['skipped']} skipped)")
    print(format_table(report["metrics"]))
    out = Path(args.out)
    print("wrote " + ", ".join(str(out / name) for name in ["metrics.json", *report["files"].values()]))
    return 0
