"""The view memory behind goal images for the LaserScan control model (vae_ros.control.runtime.view_memory)."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ros.control.runtime.view_memory import ViewMemory, ViewMemoryConfig, view_descriptor
from vae_ros.core.errors import ConfigError, InputError

S = 1_000_000_000  # ns per s


def _frames(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(count)]


def test_descriptor_ignores_brightness_and_size_but_not_content() -> None:
    a, b = _frames(2)
    d = view_descriptor(a, 16)
    assert d.shape == (256,) and abs(float(np.linalg.norm(d)) - 1.0) < 1e-5
    brighter = np.clip(a.astype(np.float32) * 0.8 + 20, 0, 255).astype(np.uint8)
    assert float(d @ view_descriptor(brighter, 16)) > 0.99  # NCC: gain and offset do not matter
    assert float(d @ view_descriptor(b, 16)) < 0.5
    grey = a.mean(axis=2).astype(np.uint8)
    assert float(d @ view_descriptor(grey, 16)) > 0.99
    with pytest.raises(InputError, match="uniform"):
        view_descriptor(np.full((8, 8), 7, np.uint8), 16)
    with pytest.raises(InputError, match="NaN"):
        view_descriptor(np.full((8, 8), np.nan, np.float32), 16)
    with pytest.raises(InputError, match="grey or RGB"):
        view_descriptor(np.zeros((8, 8, 2), np.uint8), 16)


def test_frames_pair_with_latents_by_stamp_and_goal_images_find_their_latent() -> None:
    memory = ViewMemory(ViewMemoryConfig(capacity=10, max_pair_s=0.05))
    frames = _frames(4)
    latents = [np.full(3, i, np.float32) for i in range(4)]
    assert memory.best(frames[0]) is None
    with pytest.raises(InputError, match="no camera view remembered"):
        memory.match(frames[0])
    for i in range(3):
        memory.add_frame(i * S, frames[i])
    assert not memory.add_latent(10 * S, latents[0])  # no frame within 0.05 s of it
    for i in range(3):  # latents arrive after their frames (encoding takes time), each with its frame's stamp
        assert memory.add_latent(i * S + 10_000_000, latents[i])  # 10 ms apart: paired
    assert len(memory) == 3
    for i in range(3):
        found = memory.match(frames[i])
        assert np.array_equal(found.latent, latents[i]) and found.score > 0.999 and found.stamp_ns == i * S + 10_000_000
    with pytest.raises(InputError, match="matches no remembered view"):
        memory.match(frames[3])  # never seen
    newest = memory.newest(view_descriptor(frames[2], memory.config.size))  # a waiting goal: the newest view only
    assert newest is not None and newest.score > 0.999 and np.array_equal(newest.latent, latents[2])
    assert memory.newest(view_descriptor(frames[0], memory.config.size)).score < 0.5
    with pytest.raises(InputError, match="dimensions"):
        memory.add_frame(5 * S, frames[3])
        memory.add_latent(5 * S, np.zeros(4, np.float32))


def test_the_memory_is_a_ring_of_the_newest_views() -> None:
    memory = ViewMemory(ViewMemoryConfig(capacity=2))
    frames = _frames(3, seed=1)
    for i, frame in enumerate(frames):
        memory.add_frame(i * S, frame)
        assert memory.add_latent(i * S, np.array([i], np.float32))
    assert len(memory) == 2
    assert memory.match(frames[2]).latent[0] == 2 and memory.match(frames[1]).latent[0] == 1
    with pytest.raises(InputError):
        memory.match(frames[0])  # forgotten


def test_a_near_view_in_the_simulator_matches_and_another_place_does_not() -> None:
    """Rendered frames: the same pose matches exactly; 2 cm away still matches; across the room does not."""
    from vae_ros.sim.world import SimConfig, SimWorld

    memory = ViewMemory()
    with SimWorld(SimConfig(seed=0, image_width=64, image_height=64)) as world:
        shots = {}
        for name, pose in {"here": (0.0, 0.0, 0.0), "near": (0.02, 0.0, 0.0), "there": (1.5, -1.0, 2.5)}.items():
            world.set_pose(*pose)
            shots[name] = world.render()
    memory.add_frame(0, shots["here"])
    memory.add_latent(0, np.ones(4, np.float32))
    assert memory.match(shots["here"]).score > 0.999
    assert memory.match(shots["near"]).score >= memory.config.min_score
    with pytest.raises(InputError, match="best NCC"):
        memory.match(shots["there"])


@pytest.mark.parametrize("bad", [dict(capacity=0), dict(min_score=0.0), dict(min_score=1.5), dict(max_pair_s=0.0)])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ViewMemory(ViewMemoryConfig(**bad))


def test_a_uniform_frame_is_skipped_not_remembered() -> None:
    memory = ViewMemory()
    assert not memory.add_frame(0, np.full((16, 16, 3), 90, np.uint8))  # a blank wall fills the view
    assert not memory.add_latent(0, np.zeros(4, np.float32))  # nothing to pair with
    assert len(memory) == 0
    with pytest.raises(InputError, match="uniform"):  # as a goal image it is refused, even with nothing remembered
        memory.best(np.full((16, 16, 3), 90, np.uint8))
