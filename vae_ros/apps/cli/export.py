"""`vae-ros export`: write ONNX, INT8 ONNX, TorchScript or TensorRT artifacts into a model directory; with
`--prune FRACTION`, a new, narrower model directory (structured channel pruning + a short fine-tune) and how it
compares with the unpruned model (vae_ros.core.prune)."""

from __future__ import annotations

import argparse
import sys

from vae_ros.core.prune import DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_HELD_OUT

FORMATS = ("onnx", "int8", "torchscript", "tensorrt")


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes like 1,32, got {text!r}") from err
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return sizes


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  vae-ros export --model models/image_default --format onnx\n"
        "  vae-ros export --model my_model --format int8 --bag run1 --topic camera/image_raw\n"
        "  vae-ros export --model my_model --format tensorrt --batch-sizes 1,32   (CUDA + torch_tensorrt)\n"
        "  vae-ros export --model models/scan_default --prune 0.5 --out scan_pruned --bag run1 --topic /scan\n"
        "Every export is checked against PyTorch and recorded in model.json's \"exports\" section.\n"
        "--prune removes that fraction of the channels of every convolution stage (encoder and decoder; the\n"
        "latent and the input/output shapes stay), fine-tunes the result on the training data, writes it as a\n"
        "new model directory (--out, required: the model given is never changed) with its ONNX and INT8 exports,\n"
        "and reports ONNX Runtime FP32/INT8 batch-1 latency, ELBO and latent cosine against the unpruned model."
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="model directory (model.json + weights)")
    parser.add_argument("--format", default="onnx", choices=FORMATS,
                        help="onnx: encoder.onnx + decoder.onnx (dynamic batch); int8: encoder.int8.onnx, "
                        "static quantisation calibrated on training data; torchscript: *.torchscript.pt; "
                        "tensorrt: FP16 engines cached under trt/ (default: onnx)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write a complete model directory (model.json, weights, exports) here instead of "
                        "adding the exports to --model (required with --prune)")
    prune = parser.add_argument_group("pruning")
    prune.add_argument("--prune", type=float, default=None, metavar="FRACTION",
                       help="remove this fraction (0 < FRACTION < 1) of the channels of every convolution stage, "
                       "fine-tune, and write the pruned model with its ONNX and INT8 exports into --out")
    prune.add_argument("--fine-tune-epochs", type=int, default=DEFAULT_FINE_TUNE_EPOCHS, metavar="N",
                       help=f"epochs of fine-tuning after pruning, on the data below (0: none; default "
                       f"{DEFAULT_FINE_TUNE_EPOCHS})")
    prune.add_argument("--fine-tune-lr", type=float, default=None, metavar="LR",
                       help="learning rate of the fine-tune (default: the one model.json's training summary "
                       "records, else 1e-3)")
    prune.add_argument("--held-out", type=int, default=DEFAULT_HELD_OUT, metavar="N",
                       help="validation-split samples the pruned and unpruned models are compared on (default "
                       f"{DEFAULT_HELD_OUT})")
    prune.add_argument("--json", default=None, metavar="PATH", help="also save the pruning report as JSON")
    data = parser.add_argument_group("INT8 calibration and --prune fine-tune data (default: the data named in "
                                     "model.json's training summary)")
    data.add_argument("--bag", "--calib-bag", dest="bag", metavar="PATH", help="rosbag2 folder or file")
    data.add_argument("--topic", "--calib-topic", dest="topic", metavar="NAME", help="topic in --bag")
    data.add_argument("--images", "--calib-images", dest="images", metavar="DIR", help="image folder")
    data.add_argument("--calib-samples", type=int, default=256, metavar="N",
                      help="calibration samples from the training split (default 256; a quarter as many "
                      "validation samples measure the agreement)")
    data.add_argument("--min-cosine", type=float, default=0.99, metavar="C",
                      help="fail unless INT8 latent means reach this mean cosine similarity to FP32 on "
                      "held-out samples (default 0.99)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (17 to 20, what JetPack 6's ONNX Runtime loads; default 17)")
    parser.add_argument("--batch-sizes", type=_batch_sizes, default=[1], metavar="B[,B...]",
                        help="TensorRT: batch sizes to build engines for (default 1)")


def run(args: argparse.Namespace) -> int:
    from vae_ros.core.errors import ConfigError
    from vae_ros.core.export import export_model

    if args.prune is not None:
        return _run_prune(args)
    if args.json:
        raise ConfigError("--json is the pruning report: give it with --prune")
    if args.format != "int8" and (args.bag or args.topic or args.images):
        raise ConfigError("--bag/--topic/--images are calibration data for --format int8 only (and fine-tune data "
                          "for --prune)")
    options: dict[str, object] = {}
    if args.format == "onnx":
        options["opset"] = args.opset
    elif args.format == "int8":
        options.update(bag=args.bag, topic=args.topic, images=args.images, calib_samples=args.calib_samples,
                       min_cosine=args.min_cosine)
    elif args.format == "tensorrt":
        options["batch_sizes"] = args.batch_sizes
    print(f"vae-ros export: {args.format} of {args.model} ...", file=sys.stderr, flush=True)
    result = export_model(args.model, args.format, args.out, **options)
    print(result.summary())
    return 0


def _run_prune(args: argparse.Namespace) -> int:
    from vae_ros.apps.cli.common import setup_logging
    from vae_ros.core.export import export_model
    from vae_ros.core.prune import prune_model_dir

    setup_logging("export")

    def say(line: str) -> None:
        print(f"vae-ros export: {line} ...", file=sys.stderr, flush=True)

    report = prune_model_dir(args.model, args.out, args.prune, bag=args.bag, topic=args.topic, images=args.images,
                             epochs=args.fine_tune_epochs, lr=args.fine_tune_lr, held_out=args.held_out,
                             calib_samples=args.calib_samples, min_cosine=args.min_cosine, say=say)
    if args.format in ("torchscript", "tensorrt"):  # onnx and int8 are written by the pruning itself
        options = {"batch_sizes": args.batch_sizes} if args.format == "tensorrt" else {}
        print(export_model(report.out_dir, args.format, **options).summary())
    print(report.format_table())
    if args.json:
        from vae_ros.apps.benchmarks import save_report_json

        save_report_json(report, args.json)
    return 0
