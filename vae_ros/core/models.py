"""Convolutional VAEs for camera images, LaserScans and LiDAR range images.

Every model is a `VAE`: an encoder x -> (mu, logvar) and a decoder z -> logits, rebuilt from its
ModelConfig alone (the model directory is self-describing). Design choices, all for deployment:
- Down-sampling stages are Conv(kernel 4, stride 2) + BatchNorm + ReLU. In eval mode BatchNorm is a fixed
  affine map that ONNX export folds into the convolution, so eval outputs never depend on the batch and
  the encoder quantises well to INT8 (Conv+ReLU chains).
- Up-sampling stages are nearest-neighbour resize to the exact size recorded on the way down + Conv(3),
  which handles odd lengths (360 beams -> 45 -> 22 -> 45) and circular padding uniformly and avoids the
  checkerboard artefacts of transposed convolutions.
- Circular padding (LaserScans covering a full turn, the azimuth of range images) is built from
  torch.cat of slices, which exports to ONNX/TorchScript as plain Slice/Concat ops.
- `VAE.encoder` and `VAE.decoder` are modules of their own (x -> (mu, logvar), z -> logits) so exporters
  can trace them separately with a dynamic batch; `VAE.export_decoder()` gives z -> [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vae_ros.core.config import ModelConfig
from vae_ros.core.errors import ConfigError, InputError

# (kernel, stride, padding) of a down-sampling dimension, and of a dimension kept at its size.
_DOWN = (4, 2, 1)
_KEEP = (3, 1, 1)


def _down_size(size: int) -> int:
    """Length after a kernel-4, stride-2, padding-1 convolution: floor(size / 2)."""
    return (size + 2 * _DOWN[2] - _DOWN[0]) // _DOWN[1] + 1


class _CircularPad(nn.Module):
    """Wrap-around padding of the spatial dims flagged in `circular` by `amounts` on each side.

    Built from slices + torch.cat so exporters see plain Slice/Concat ops with constant indices (ONNX Pad
    has no 'wrap' mode before opset 19 and quantisation tools handle it poorly). Zero padding of the other
    dims is left to the convolution's own `padding`, which ONNX keeps inside the Conv node.
    """

    def __init__(self, amounts: tuple[int, ...], circular: tuple[bool, ...]) -> None:
        super().__init__()
        self.pads = [(i, a) for i, (a, c) in enumerate(zip(amounts, circular, strict=True)) if c and a]
        self.spatial = len(amounts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, amount in self.pads:
            if i == self.spatial - 1:  # the last dim (scan beams, range-image azimuth)
                x = torch.cat([x[..., -amount:], x, x[..., :amount]], dim=-1)
            else:  # the second-to-last dim of a 2-D input
                x = torch.cat([x[..., -amount:, :], x, x[..., :amount, :]], dim=-2)
        return x


def _conv(
    c_in: int,
    c_out: int,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pad: tuple[int, ...],
    circular: tuple[bool, ...],
) -> nn.Module:
    """Conv1d/Conv2d whose zero padding covers the non-circular dims (circular ones are pre-padded)."""
    zero_pad = tuple(0 if c else p for p, c in zip(pad, circular, strict=True))
    if len(kernel) == 1:
        return nn.Conv1d(c_in, c_out, kernel[0], stride[0], zero_pad[0])
    return nn.Conv2d(c_in, c_out, kernel, stride, zero_pad)  # type: ignore[arg-type]


def _norm(dims: int, channels: int) -> nn.Module:
    return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)


class _DownStage(nn.Sequential):
    """pad -> conv (stride 2 where `down`, else stride 1) -> BatchNorm -> ReLU."""

    def __init__(self, c_in: int, c_out: int, down: tuple[bool, ...], circular: tuple[bool, ...]) -> None:
        dims = len(down)
        kernel = tuple(_DOWN[0] if d else _KEEP[0] for d in down)
        stride = tuple(_DOWN[1] if d else _KEEP[1] for d in down)
        pad = tuple(_DOWN[2] if d else _KEEP[2] for d in down)
        super().__init__(
            _CircularPad(pad, circular),
            _conv(c_in, c_out, kernel, stride, pad, circular),
            _norm(dims, c_out),
            nn.ReLU(inplace=True),
        )


class _UpStage(nn.Sequential):
    """nearest resize to `size` -> pad -> conv 3 -> BatchNorm -> ReLU (or bare conv for the output)."""

    def __init__(
        self, c_in: int, c_out: int, size: tuple[int, ...], circular: tuple[bool, ...], last: bool = False
    ) -> None:
        dims = len(size)
        layers: list[nn.Module] = [
            nn.Upsample(size=size, mode="nearest"),
            _CircularPad((1,) * dims, circular),
            _conv(c_in, c_out, (3,) * dims, (1,) * dims, (1,) * dims, circular),
        ]
        if not last:
            layers += [_norm(dims, c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ConvEncoder(nn.Module):
    """x (B, C_in, *spatial) -> (mu (B, D), logvar (B, D)) through stride-2 conv stages and two linear heads."""

    def __init__(
        self,
        in_channels: int,
        spatial: tuple[int, ...],
        channels: list[int],
        latent_dim: int,
        circular: tuple[bool, ...],
    ) -> None:
        super().__init__()
        sizes = [spatial]
        stages: list[nn.Module] = []
        c_in = in_channels
        for c_out in channels:
            # Down-sample a dimension while it is at least 2 long; a 16-row range image goes 16->8->4->2->1
            # and then keeps 1 row while the columns go on halving.
            down = tuple(s >= 2 for s in sizes[-1])
            if not any(down):
                raise ConfigError(
                    f"input {spatial} is too small for {len(channels)} stride-2 stages; use fewer channels"
                )
            stages.append(_DownStage(c_in, c_out, down, circular))
            sizes.append(tuple(_down_size(s) if d else s for s, d in zip(sizes[-1], down, strict=True)))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.sizes = sizes  # spatial size before each stage, then the final feature map size
        features = c_in
        for s in sizes[-1]:
            features *= s
        self.fc_mu = nn.Linear(features, latent_dim)
        self.fc_logvar = nn.Linear(features, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stages(x).flatten(1)  # (B, C_last * prod(final spatial))
        return self.fc_mu(h), self.fc_logvar(h)  # (B, D), (B, D)


class ConvDecoder(nn.Module):
    """z (B, D) -> logits (B, C_out, *spatial): mirror of ConvEncoder with resize + conv stages."""

    def __init__(
        self,
        out_channels: int,
        sizes: list[tuple[int, ...]],
        channels: list[int],
        latent_dim: int,
        circular: tuple[bool, ...],
    ) -> None:
        super().__init__()
        self.start_channels = channels[-1]
        self.start_size = sizes[-1]
        features = channels[-1]
        for s in sizes[-1]:
            features *= s
        self.fc = nn.Linear(latent_dim, features)
        stages: list[nn.Module] = []
        # Going up: channels[-1] -> channels[-2] ... -> channels[0] -> out_channels, sizes in reverse.
        outs = list(reversed(channels[:-1])) + [out_channels]
        c_in = channels[-1]
        targets = list(reversed(sizes[:-1]))
        for i, (c_out, size) in enumerate(zip(outs, targets, strict=True)):
            stages.append(_UpStage(c_in, c_out, size, circular, last=i == len(outs) - 1))
            c_in = c_out
        self.stages = nn.Sequential(*stages)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(z))  # (B, C_last * prod(start))
        h = h.view(-1, self.start_channels, *self.start_size)  # (B, C_last, *start)
        return self.stages(h)  # (B, C_out, *spatial) logits


class ProbabilityDecoder(nn.Module):
    """z (B, D) -> sigmoid(logits) in [0, 1]: the decoder as deployed (export, backends)."""

    def __init__(self, decoder: ConvDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))


class VAE(nn.Module):
    """Base VAE: `encoder` (x -> mu, logvar) and `decoder` (z -> logits), shapes from `config`.

    Kingma & Welling 2014, "Auto-Encoding Variational Bayes". Decoder outputs are logits; `decode` applies
    the sigmoid, which is the Bernoulli mean and, for the Gaussian likelihood, the mean in [0, 1] too.
    """

    encoder: ConvEncoder
    decoder: ConvDecoder

    def __init__(self, config: ModelConfig, circular: tuple[bool, ...] | None = None) -> None:
        super().__init__()
        self.config = config
        shape = config.input_shape
        if circular is None:
            circular = (False,) * (len(shape) - 1)
        arch = config.arch
        self.encoder = ConvEncoder(shape[0], tuple(shape[1:]), list(arch.channels), arch.latent_dim, circular)
        self.decoder = ConvDecoder(
            config.output_channels, self.encoder.sizes, list(arch.channels), arch.latent_dim, circular
        )

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def _check_input(self, x: torch.Tensor) -> None:
        expected = tuple(self.config.input_shape)
        if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise InputError(f"model input must be (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")

    def _check_latent(self, z: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise InputError(f"latent must be (B, {self.latent_dim}), got {tuple(z.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, *input_shape) float32 -> (mu (B, D), logvar (B, D)) of q(z|x)."""
        self._check_input(x)
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> logits (B, output_channels, *spatial); the losses work on logits for stability."""
        self._check_latent(z)
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> reconstruction (B, output_channels, *spatial) in [0, 1] (sigmoid of the logits)."""
        return torch.sigmoid(self.decode_logits(z))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): the reparameterisation trick (Kingma & Welling 2014)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (logits, mu, logvar); z is a reparameterised sample in train mode and the mean in eval mode."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar) if self.training else mu  # (B, D)
        return self.decoder(z), mu, logvar

    def export_decoder(self) -> ProbabilityDecoder:
        """The decoder with the sigmoid built in (z -> [0, 1]), sharing weights, for ONNX/TorchScript export.

        The wrapper takes this model's train/eval mode: exporters restore the wrapper's mode afterwards, and a
        fresh module in train mode would leave the shared decoder's BatchNorm in train mode.
        """
        return ProbabilityDecoder(self.decoder).train(self.training)


class ImageVAE(VAE):
    """Camera images (B, C, H, W), C = 1 or 3, in [0, 1]; Conv2d stages with zero padding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, circular=(False, False))


class ScanVAE(VAE):
    """LaserScans (B, 2, beams) = [range, mask] -> logits (B, 1, beams); Conv1d, circular for a full turn."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, circular=(config.scan_spec.wraps,))


class RangeImageVAE(VAE):
    """Spherical range images (B, 2, rows, cols) -> logits (B, 1, rows, cols); circular in azimuth only."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, circular=(False, True))


_MODELS: dict[str, type[VAE]] = {"image": ImageVAE, "scan": ScanVAE, "pointcloud": RangeImageVAE}


def build_model(config: ModelConfig) -> VAE:
    """The VAE subclass for config.modality, freshly initialised (call .eval() before inference)."""
    config.validate()
    try:
        cls = _MODELS[config.modality]
    except KeyError as err:
        raise ConfigError(f"no model for modality {config.modality!r}; expected one of {sorted(_MODELS)}") from err
    return cls(config)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters (for reports and model.json training summaries)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
