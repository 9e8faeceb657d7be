"""`vae-ros train`: train a VAE from a rosbag2 topic (MCAP or sqlite3) or an image folder into a model directory.

    vae-ros train --bag BAG --topic /camera/image_raw --out trained/my_camera --epochs 30
    vae-ros train --images photos/ --out models/photos --image-size 64 --channels 3
    vae-ros train --bag BAG --topic /scan --out models/my_scan          # modality from the topic type
    vae-ros train ... --out trained/my_camera --resume --epochs 50      # continue (or extend) a run
    torchrun --nproc-per-node=4 -m vae_ros.apps.cli train ...               # one process per GPU (or CPU share)
    vae-ros train --bag BAG --topic camera/image_raw --topic scan --out trained/my_fused   # fused camera + LiDAR
    vae-ros train --bag BAG --topic camera/image_raw --topic scan --pose-topic odom --out trained/my_fused

The output folder becomes a model directory (model.json + weights.safetensors of the best validation
epoch), with training_curves.png and checkpoint/ (for --resume) beside them. With two topics it becomes a
fused model directory (vae_ros.core.fused; trained by vae_ros.control.training.fused.build_from_bag, or with
--pose-topic by build_control_fit_from_bag: a control-fit LiDAR expert from the bag, then the camera's).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vae_ros.apps.cli.common import (
    add_data_arguments,
    add_speed_arguments,
    int_list,
    positive_int,
    remove_if_empty,
    setup_logging,
)
from vae_ros.core.fused import SYNC_SLOP_S

LR_DEFAULT, FUSED_LR_DEFAULT = 1e-3, 5e-4
FUSED_EPILOG = (
    "A fused camera + LiDAR model: `--bag B --topic CAMERA --topic SCAN --out DIR` pairs each scan with the "
    "camera frame nearest in header stamp (within --sync-slop), keeps the joint latent of --joint-model (a scan "
    "model; the packaged control model) and fits a camera expert, started from --camera-init, to it. It takes "
    "--epochs, --batch-size, --lr, --val-percent, --seed and --quiet; the model flags do not apply. With "
    "--pose-topic ODOM (instead of --joint-model) the joint latent is trained from the same bag first: stage 1 is "
    "the control-fit training of the LiDAR's expert on the scan topic and ODOM, as `--topic SCAN --pose-topic ODOM` "
    "(--steps, --metric-weight, --yaw-weight, --beta, --warmup-steps, --device and the scan model flags; learning "
    f"rate {LR_DEFAULT:g}), stage 2 the camera's expert fitted to that latent (--epochs, --lr); --batch-size, "
    "--val-percent and --seed serve both, and both hold out the same scans.")


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = FUSED_EPILOG
    add_data_arguments(parser, several_bags=True, two_topics=True)
    parser.add_argument("--out", metavar="DIR", required=True, help="model directory to write")
    parser.add_argument("--resume", action="store_true",
                        help="continue from DIR/checkpoint after its last completed epoch (model and "
                             "optimisation settings come from the checkpoint; --epochs may extend the run)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a previous training in --out (removes its model, checkpoint, "
                             "curves and exports; other files are left alone)")
    model = parser.add_argument_group("model")
    model.add_argument("--modality", choices=("image", "scan", "pointcloud"),
                       help="default: from the topic's message type (images for --images)")
    model.add_argument("--latent-dim", type=positive_int, default=16, metavar="D", help="latent size (16)")
    model.add_argument("--arch-channels", type=int_list, metavar="C1,C2,..",
                       help="channels of each stride-2 conv stage (default 32,64,128,256)")
    model.add_argument("--likelihood", choices=("gaussian", "bernoulli"), default="gaussian",
                       help="decoder likelihood (gaussian)")
    model.add_argument("--obs-std", type=float, default=0.1, metavar="S",
                       help="Gaussian likelihood: observation noise in normalised units (0.1); smaller "
                            "weighs reconstruction more against the KL term")
    model.add_argument("--image-size", type=positive_int, default=64, metavar="N",
                       help="square image side, a multiple of 16 (64)")
    model.add_argument("--channels", type=int, choices=(1, 3), default=3, help="image channels (3 = RGB)")
    model.add_argument("--beams", type=positive_int, metavar="N",
                       help="scan model beams (default: the bag's beam count rounded to a multiple of 8)")
    model.add_argument("--rows", type=positive_int, default=16, help="range-image rows (16)")
    model.add_argument("--cols", type=positive_int, default=256, help="range-image columns (256)")
    model.add_argument("--fov-up", type=float, default=15.0, metavar="DEG", help="range-image top (15)")
    model.add_argument("--fov-down", type=float, default=-15.0, metavar="DEG", help="range-image bottom (-15)")
    model.add_argument("--range-max", type=float, metavar="M",
                       help="LiDAR normalising range (default: the scan's range_max, 10 m for clouds)")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=30, help="epochs (30)")
    opt.add_argument("--batch-size", type=positive_int, default=64,
                     help="batch size (64); under torchrun the global batch, shared by the processes")
    opt.add_argument("--lr", type=float, help=f"Adam learning rate ({LR_DEFAULT:g}; fused training {FUSED_LR_DEFAULT:g}, "
                                              "the camera expert's, also with --pose-topic)")
    opt.add_argument("--beta", type=float, default=1.0, help="KL weight beta (1.0)")
    opt.add_argument("--kl-anneal", choices=("linear", "cyclical", "none"), default="linear",
                     help="KL annealing schedule (linear)")
    opt.add_argument("--warmup-steps", type=int, default=1000, metavar="N",
                     help="KL annealing ramp in optimisation steps (1000)")
    opt.add_argument("--free-bits", type=float, default=0.0, metavar="F", help="free bits per dim, nats (0)")
    opt.add_argument("--val-percent", type=float, default=10.0, help="validation share in percent (10)")
    opt.add_argument("--seed", type=int, default=0, help="random seed (0)")
    opt.add_argument("--device", default="cpu",
                     help="cpu or cuda[:N] (cpu); under torchrun cuda, each process on the GPU of its LOCAL_RANK")
    opt.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes (0)")
    opt.add_argument("--cache-mb", type=float, default=2048.0,
                     help="RAM for preprocessed samples (per process); larger data streams from disk every "
                          "epoch (2048)")
    add_speed_arguments(opt)
    opt.add_argument("--quiet", action="store_true", help="no progress bar")
    control = parser.add_argument_group(
        "control-fit training (with --pose-topic: ELBO + a term tying latent distance to pose distance, so that "
        "latent_servo_node can servo in the latent space; see docs/CONTROL.md)")
    control.add_argument("--pose-topic", metavar="NAME",
                         help="nav_msgs/Odometry topic giving each sensor message its pose (e.g. odom); turns on "
                              "control-fit training, which counts --steps instead of --epochs (with two --topic: "
                              "of the fused model's LiDAR expert, then --epochs of its camera expert)")
    control.add_argument("--steps", type=positive_int, default=6000, help="optimisation steps (6000)")
    control.add_argument("--metric-weight", type=float, default=300.0, metavar="W",
                         help="weight of the pose-metric term (300)")
    control.add_argument("--yaw-weight", type=float, default=1.0, metavar="M",
                         help="metres of pose distance per radian of yaw in the metric (1.0)")
    fused = parser.add_argument_group(
        "fused training (two --topic: a camera and a LaserScan of one robot; see docs/TRAINING.md)")
    fused.add_argument("--sync-slop", type=float, default=SYNC_SLOP_S, metavar="S",
                       help=f"seconds between a scan's and a camera frame's header stamps that still pair "
                            f"(encoder_node's sync_slop; {SYNC_SLOP_S:g})")
    fused.add_argument("--joint-model", metavar="DIR",
                       help="scan model whose latent is the joint latent (default: the packaged control_default; "
                            "not with --pose-topic, which trains it)")
    fused.add_argument("--camera-init", metavar="DIR",
                       help="image model the camera's expert starts from (default: the packaged image_default)")


def prepare_out_dir(out: Path, resume: bool, force: bool) -> None:
    """Refuse to train over a non-empty folder unless resuming, or told to overwrite (then clean it)."""
    from vae_ros.core.errors import ConfigError
    from vae_ros.core.train import ARTIFACTS

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ConfigError(f"--out {out} is not empty; pass --resume to continue its training or --force to "
                          "overwrite it")
    import shutil

    for name in ARTIFACTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def build_model_config(args: argparse.Namespace, source: Any) -> Any:
    """The ModelConfig the flags describe, with LiDAR specs matched to the data where not given."""
    from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, PointCloudSpec
    from vae_ros.core.data import BagSource, scan_spec_from_message
    from vae_ros.core.errors import ConfigError

    modality = args.modality or source.modality
    arch = ArchSpec(latent_dim=args.latent_dim, likelihood=args.likelihood, obs_std=args.obs_std)
    if args.arch_channels:
        arch.channels = list(args.arch_channels)
    if modality == "image":
        config = ModelConfig(modality="image", arch=arch,
                             image=ImageSpec(height=args.image_size, width=args.image_size,
                                             channels=args.channels))
    elif modality == "scan":
        if not isinstance(source, BagSource):
            raise ConfigError("scan models train from a LaserScan topic (--bag PATH --topic NAME)")
        source.check_modality(ModelConfig(modality="scan"))
        spec = scan_spec_from_message(source.first_message(), args.beams)
        if args.range_max is not None:
            spec.range_max = args.range_max
        config = ModelConfig(modality="scan", arch=arch, scan=spec)
    else:
        config = ModelConfig(modality="pointcloud", arch=arch, pointcloud=PointCloudSpec(
            rows=args.rows, cols=args.cols, fov_up_deg=args.fov_up, fov_down_deg=args.fov_down,
            range_max=args.range_max if args.range_max is not None else 10.0))
    config.validate()
    return config


def _train(args: argparse.Namespace, dist: Any) -> dict[str, Any]:
    """Train as the flags say; under torchrun rank 0 alone prepares --out and gets the summary."""
    from vae_ros.core.data import open_source
    from vae_ros.core.errors import ConfigError
    from vae_ros.core.train import TrainConfig, select_device, train

    bags = args.bag or []
    if len(bags) > 1:
        raise ConfigError("several --bag are for control-fit training (--pose-topic); give one --bag")
    select_device(dist.device_name(args.device))  # before anything is removed by --force
    source = open_source(bags[0] if bags else None, args.topic, args.images)
    out = Path(args.out).expanduser()
    created = not out.exists()
    if dist.is_main:
        prepare_out_dir(out, args.resume, args.force)
    model_config = build_model_config(args, source)
    source.check_modality(model_config)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=_lr(args, LR_DEFAULT), beta=args.beta,
        kl_annealing=args.kl_anneal, warmup_steps=args.warmup_steps, free_bits=args.free_bits,
        val_percent=args.val_percent, seed=args.seed, device=args.device, num_workers=args.num_workers,
        cache_mb=args.cache_mb, precision=args.precision, channels_last=args.channels_last, compile=args.compile,
    )
    try:
        return train(source, model_config, train_config, out, resume=args.resume, progress=not args.quiet,
                     dist=dist)
    except BaseException:
        if created and dist.is_main:  # a run that failed before writing anything leaves no empty folder behind
            remove_if_empty(out)
        raise


def _refuse_speed_flags(args: argparse.Namespace, what: str) -> None:
    """--precision bf16, --channels-last and --compile are the VAE loop's (core.train); refused, not ignored."""
    from vae_ros.core.errors import ConfigError

    given = [flag for flag, on in (("--precision bf16", args.precision != "fp32"),
                                   ("--channels-last", args.channels_last), ("--compile", args.compile)) if on]
    if given:
        raise ConfigError(f"{', '.join(given)}: not supported for {what}, which trains in fp32; drop "
                          f"{'them' if len(given) > 1 else 'it'}")


def _run_control(args: argparse.Namespace) -> int:
    from vae_ros.control.training.metric import MetricSpec
    from vae_ros.control.training.train_metric import ControlTrainConfig, read_posed_samples, train_control
    from vae_ros.core.data import BagSource
    from vae_ros.core.errors import ConfigError
    from vae_ros.core.train import select_device

    if not args.bag or not args.topic or args.images:
        raise ConfigError("--pose-topic trains from bags: give --bag PATH (one or more) and --topic NAME")
    if args.resume:
        raise ConfigError("--resume is not supported with --pose-topic; control-fit training restarts")
    _refuse_speed_flags(args, "control-fit training (--pose-topic)")
    select_device(args.device)
    config = ControlTrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=_lr(args, LR_DEFAULT), beta=args.beta,
        warmup_steps=min(args.warmup_steps, args.steps), val_percent=args.val_percent, seed=args.seed,
        device=args.device, metric=MetricSpec(weight=args.metric_weight, yaw_weight=args.yaw_weight))
    config.validate()
    out = Path(args.out).expanduser()
    prepare_out_dir(out, False, args.force)
    model_config = build_model_config(args, BagSource(args.bag[0], args.topic))
    data = read_posed_samples(args.bag, args.topic, args.pose_topic, model_config, progress=not args.quiet)
    summary = train_control(data, model_config, config, out, progress=not args.quiet)
    print("\n".join([
        f"model directory: {out}",
        f"samples: {summary['samples']['train']} train, {summary['samples']['val']} validation, "
        f"from {len(args.bag)} recording(s)",
        *_control_lines(summary),
        f"time: {summary['time_s']:.1f} s on {summary['device']}"]))
    return 0


def _control_lines(summary: dict[str, Any]) -> list[str]:
    """The report of a control-fit training (train_metric.train_control's summary): best step, servo tolerance."""
    best = summary["best"]
    calibration = summary["control"]["calibration"]
    return [
        f"best at step {best['epoch']}: val metric loss {best['val_metric']:.4f}, latent vs pose distance "
        f"Spearman {best['val_spearman_1_5m']:.3f} (pairs within 1.5 m), recon NLL {best['val_recon_nll']:.1f}, "
        f"KL {best['val_kl']:.1f}",
        (f"servo tolerance: latent error {calibration['tolerance']:.4f} (precision {calibration['precision']:.1%}, "
         f"recall {calibration['recall']:.1%} for 0.10 m / 5 deg)" if calibration.get("tolerance") else
         f"servo tolerance: not calibrated ({calibration.get('error')}); set latent_servo_node's tolerance")]


def _lr(args: argparse.Namespace, default: float) -> float:
    return float(args.lr) if args.lr is not None else default


def _run_fused(args: argparse.Namespace, distributed: bool) -> int:
    """Two --topic: a fused camera + LiDAR model from one bag (vae_ros.control.training.fused.build_from_bag);
    with --pose-topic its LiDAR expert is control-fit trained from the bag first (build_control_fit_from_bag)."""
    import logging

    from vae_ros.control.training.fused import FusedTrainConfig, build_control_fit_from_bag, build_from_bag
    from vae_ros.core.errors import ConfigError
    from vae_ros.core.plots import save_fused_training_curves
    from vae_ros.core.train import CURVES_FILE
    from vae_ros.resources import models_dir

    for given, flag in ((args.resume, "--resume"), (distributed, "torchrun"), (args.images, "--images"),
                        (args.modality, "--modality")):
        if given:
            raise ConfigError(f"{flag} is not supported for fused training (two --topic); train a fused model "
                              "in one process from one bag, from the start")
    if args.pose_topic and args.joint_model:
        raise ConfigError("--joint-model and --pose-topic contradict each other: with --pose-topic the joint latent "
                          "is trained from the bag (control-fit LiDAR expert); drop one of them")
    if not args.bag:
        raise ConfigError("fused training (two --topic) reads a bag: give --bag PATH")
    if len(args.bag) > 1:
        raise ConfigError("fused training (two --topic) reads one bag; give one --bag")
    if args.device != "cpu" and not args.pose_topic:
        raise ConfigError(f"fused training runs on the CPU; drop --device {args.device}")
    _refuse_speed_flags(args, "fused training (two --topic)")
    out = Path(args.out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not empty; a fused model is written to a new folder"
                          + (" (--force does not apply to fused training)" if args.force else ""))
    camera_init = Path(args.camera_init).expanduser() if args.camera_init else models_dir() / "image_default"
    config = FusedTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=_lr(args, FUSED_LR_DEFAULT),
                              seed=args.seed)
    log = logging.getLogger("vae_ros.control.training.fused").info
    lines = []
    if args.pose_topic:
        from vae_ros.control.training.fused import fused_sensor_topics
        from vae_ros.control.training.metric import MetricSpec
        from vae_ros.control.training.train_metric import ControlTrainConfig
        from vae_ros.core.train import select_device

        select_device(args.device)
        control = ControlTrainConfig(
            steps=args.steps, batch_size=args.batch_size, lr=LR_DEFAULT, beta=args.beta,
            warmup_steps=min(args.warmup_steps, args.steps), val_percent=args.val_percent, seed=args.seed,
            device=args.device, metric=MetricSpec(weight=args.metric_weight, yaw_weight=args.yaw_weight))
        control.validate()
        scan_config = build_model_config(args, fused_sensor_topics(args.bag[0], args.topic)["scan"])
        remove_if_empty(out)  # an empty folder is fine: the model directory is written in its place
        summary, scan_summary = build_control_fit_from_bag(
            out, args.bag[0], args.topic, args.pose_topic, scan_config, control, camera_init, config,
            args.sync_slop, progress=not args.quiet, log=log)
        joint = f"the LiDAR expert trained here with {summary['scan_stage']['pose_topic']} poses"
        lines += [f"LiDAR expert (stage 1, control-fit): {scan_summary['samples']['train']} train, "
                  f"{scan_summary['samples']['val']} validation scans, {scan_summary['time_s']:.1f} s on "
                  f"{scan_summary['device']}; curves: {out / 'scan' / CURVES_FILE}",
                  *_control_lines(scan_summary)]
    else:
        remove_if_empty(out)
        joint_dir = Path(args.joint_model).expanduser() if args.joint_model else models_dir() / "control_default"
        summary = build_from_bag(out, args.bag[0], args.topic, joint_dir, camera_init, config, args.sync_slop,
                                 args.val_percent, progress=not args.quiet, log=log)
        joint = f"joint latent of {joint_dir}"
    save_fused_training_curves(summary["history"], out / CURVES_FILE)
    source, final = summary["source"], summary["final"]
    rejected = source["rejected"]
    print("\n".join([
        f"fused model directory: {out} (camera + scan, {joint})",
        *lines,
        f"pairs: {source['pairs']} ({summary['samples']['train']} train, {summary['samples']['val']} validation) "
        f"of {source['scans']} scans and {source['camera_frames']} camera frames within {source['sync_slop_s']:g} s "
        f"(median offset {source['median_offset_s'] * 1000:.1f} ms); skipped: {source['unpaired_scans']} scan(s) "
        f"without a frame, {rejected['camera']} camera and {rejected['scan']} scan messages rejected",
        f"camera-alone latent error {final['val_latent_error']:.3f} (blind {final['val_blind_latent_error']:.3f}; "
        f"{summary['initial']['val_latent_error']:.3f} before training), match NLL {final['val_match_nll']:.2f}",
        f"image PSNR from scan / camera / both: {final['val_psnr_scan_db']:.2f} / {final['val_psnr_camera_db']:.2f} / "
        f"{final['val_psnr_both_db']:.2f} dB",
        f"time: {summary['time_s']:.1f} s on cpu; curves: {out / CURVES_FILE}"]))
    return 0


def run(args: argparse.Namespace) -> int:
    from vae_ros.core.distributed import from_env, process_group
    from vae_ros.core.errors import ConfigError

    dist = from_env()  # under torchrun: this process's rank; otherwise one process
    setup_logging("train", dist.rank)
    topics = list(args.topic or [])
    if len(topics) > 2:
        raise ConfigError(f"--topic is given {len(topics)} times; give one (a VAE of that topic) or two (a camera "
                          "and a LaserScan: a fused model)")
    if len(topics) == 2:
        return _run_fused(args, dist.enabled)
    args.topic = topics[0] if topics else None
    if args.pose_topic:
        if dist.enabled:
            raise ConfigError("control-fit training (--pose-topic) runs in one process; start it without torchrun")
        return _run_control(args)
    with process_group(dist, args.device):
        summary = _train(args, dist)
    if not dist.is_main:
        return 0
    best = summary.get("best") or {}
    lines = [f"model directory: {Path(args.out).expanduser()}",
             f"samples: {summary['samples']['train']} train, {summary['samples']['val']} validation, "
             f"{summary['samples']['skipped']} skipped",
             f"best epoch {summary['best_epoch']} of {summary['epochs']}: val ELBO {summary['val_elbo']:.3f} "
             f"nats, recon NLL {best.get('val_recon_nll', float('nan')):.3f}, KL {best.get('val_kl', float('nan')):.3f}"]
    if "val_psnr_db" in best:
        lines.append(f"PSNR {best['val_psnr_db']:.2f} dB, MSE {best['val_mse']:.6f}")
    if "val_range_mae_m" in best:
        lines.append(f"range error {best['val_range_mae_m']:.4f} m (MAE), {best['val_range_rmse_m']:.4f} m (RMSE)")
    if best.get("active_units") is not None:
        lines.append(f"active units: {best['active_units']} of {len(best['kl_per_dim'])}")
    lines.append(f"time: {summary['time_s']:.1f} s on {summary['device']}")
    print("\n".join(lines))
    return 0
