"""One process of scripts/gpu_check.py's torchrun row: a tiny `train` on CUDA under torchrun (NCCL), on synthetic
images held in memory (no bag, no OpenCV). Prints one line: the process group's backend, world size, epochs and
the final validation ELBO. Run as `torchrun --nproc-per-node=1 scripts/gpu_check_torchrun.py OUT_DIR [cuda|cpu]`.
"""

from __future__ import annotations

import sys

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.data import ArraySource, smooth_images
from vae_ros.core.distributed import Distributed, from_env, process_group
from vae_ros.core.train import TrainConfig, train


class _Group(Distributed):
    """torchrun's place, with the process group and DistributedDataParallel even for one process (vae_ros leaves
    them out when WORLD_SIZE is 1): the NCCL path of a multi-GPU run, on one GPU."""

    @property
    def enabled(self) -> bool:
        return True


def main() -> int:
    import torch

    place = from_env()
    dist = _Group(place.rank, place.world_size, place.local_rank)
    device = sys.argv[2] if len(sys.argv) > 2 else "cuda"
    config = ModelConfig(modality="image", image=ImageSpec(32, 32, 3),
                         arch=ArchSpec(latent_dim=4, channels=[8, 16, 32]))
    with process_group(dist, device):
        backend = torch.distributed.get_backend()
        summary = train(ArraySource(smooth_images(256)), config,
                        TrainConfig(epochs=2, batch_size=32, warmup_steps=10, device=device), sys.argv[1],
                        progress=False, dist=dist)
    if dist.is_main:
        print(f"backend {backend}, {dist.world_size} process(es), {summary['epochs']} epochs, "
              f"val ELBO {summary['val_elbo']:.1f} on {summary['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
