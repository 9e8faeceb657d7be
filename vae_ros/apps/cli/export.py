"""`vae-ros export`: write ONNX, INT8 ONNX, TorchScript or TensorRT artifacts into a model directory."""

from __future__ import annotations

import argparse
import sys

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
        "Every export is checked against PyTorch and recorded in model.json's \"exports\" section."
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="model directory (model.json + weights)")
    parser.add_argument("--format", default="onnx", choices=FORMATS,
                        help="onnx: encoder.onnx + decoder.onnx (dynamic batch); int8: encoder.int8.onnx, "
                        "static quantisation calibrated on training data; torchscript: *.torchscript.pt; "
                        "tensorrt: FP16 engines cached under trt/ (default: onnx)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write a complete model directory (model.json, weights, exports) here instead of "
                        "adding the exports to --model")
    data = parser.add_argument_group("INT8 calibration data (default: the data named in model.json's training "
                                     "summary)")
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

    if args.format != "int8" and (args.bag or args.topic or args.images):
        raise ConfigError("--bag/--topic/--images are calibration data for --format int8 only")
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
