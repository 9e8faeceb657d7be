"""Pairing a fused model's sensors by header stamp, and leaving out a silent one (ROS-free; encoder_node's rule).

Each sensor's messages wait in a short buffer (the newest few, DEPTH). A message completes a group when every
other *live* sensor has a waiting message stamped within `slop` of it (the nearest one); the group is the
joint latent's input, and its members and everything older are taken out of the buffers, so each message
counts in one group at most and a faster sensor's extra messages are dropped (one latent per pair, at the
slower sensor's rate). Groups are made on the arrival of the message that completes them: no waiting for a
better partner.

A sensor is *live* while its newest accepted message arrived less than `timeout` seconds ago (the caller's
monotonic clock: arrival, not stamps, so a clock offset between the sensors cannot hide a silent one). A
sensor the caller rejects a message of (malformed) never reaches `add`, so garbage counts as silence. With
no other sensor live, each message is a group alone, at once; when a sensor drops out, the newest message
waiting for it is released alone (`poll`), so the latents go on within `timeout` of the last pair.

Stamps that never pair (a clock offset between the sensors beyond `slop`, a slop too small for their
latency): while no group of all live sensors has completed for `timeout` seconds although they are all live,
the sync is *unpaired* and each message is a group alone on arrival (the caller says so, with `offset`);
a message that does find its partner ends it.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vae_ros.core.errors import ConfigError

PERIOD_SAMPLES = 10  # gaps between a sensor's messages whose median is its period (SensorSync.period_s)
DEPTH = 8  # messages kept per sensor while they wait for a partner (a 30 Hz camera: 0.27 s)


@dataclass(frozen=True)
class Sample:
    """One accepted sensor message: its header stamp (ns), arrival (s, monotonic) and what the caller keeps."""

    sensor: str
    stamp_ns: int
    arrival_s: float
    item: Any


@dataclass(frozen=True)
class Group:
    """Messages that make one joint latent, in the model's sensor order; `paired`: of several sensors."""

    samples: tuple[Sample, ...]

    @property
    def sensors(self) -> tuple[str, ...]:
        return tuple(s.sensor for s in self.samples)

    @property
    def stamp_ns(self) -> int:
        """The newest stamp of the group: the joint latent holds what the sensors saw up to then."""
        return max(s.stamp_ns for s in self.samples)

    @property
    def paired(self) -> bool:
        return len(self.samples) > 1


class SensorSync:
    """The pairing rule of the module docstring; the caller owns the clock (`now`, seconds, monotonic)."""

    def __init__(self, sensors: Sequence[str], slop_s: float, timeout_s: float, depth: int = DEPTH) -> None:
        if not sensors or len(set(sensors)) != len(sensors):
            raise ConfigError(f"sensor sync needs distinct sensors, got {list(sensors)}")
        if not (slop_s >= 0 and timeout_s > 0):
            raise ConfigError(f"sync_slop must be >= 0 and sensor_timeout > 0 s, got {slop_s} and {timeout_s}")
        self.sensors = tuple(sensors)
        self.slop_ns = int(round(slop_s * 1e9))
        self.timeout_s = float(timeout_s)
        self._waiting: dict[str, deque[_Waiting]] = {s: deque(maxlen=depth) for s in self.sensors}
        self._last_arrival: dict[str, float] = {}
        # Per sensor, the last PERIOD_SAMPLES gaps between its accepted messages (period_s).
        self._gaps: dict[str, deque[float]] = {s: deque(maxlen=PERIOD_SAMPLES) for s in self.sensors}
        self._newest_stamp: dict[str, int] = {}
        self._live: tuple[str, ...] = ()
        self._pairing_since = 0.0  # the last group of all live sensors, or when the live set last changed

    # -- state -----------------------------------------------------------------------------------------------
    def live(self, now: float) -> tuple[str, ...]:
        """The sensors heard from within `timeout`, in the model's order."""
        return tuple(s for s in self.sensors
                     if s in self._last_arrival and now - self._last_arrival[s] < self.timeout_s)

    def period_s(self, sensor: str) -> float | None:
        """The median gap between `sensor`'s last accepted messages (arrival times), once PERIOD_SAMPLES are known;
        else None."""
        gaps = self._gaps[sensor]
        return float(statistics.median(gaps)) if len(gaps) == gaps.maxlen else None

    def unpaired(self, now: float) -> bool:
        """Several sensors are live but none of their messages paired for `timeout` seconds."""
        return len(self._live) > 1 and now - self._pairing_since >= self.timeout_s

    def offset_s(self) -> float | None:
        """Newest stamp of the last sensor minus that of the first (both heard): the offset a user checks."""
        heard = [s for s in self.sensors if s in self._newest_stamp]
        if len(heard) < 2:
            return None
        return (self._newest_stamp[heard[-1]] - self._newest_stamp[heard[0]]) * 1e-9

    def _update_live(self, now: float) -> None:
        live = self.live(now)
        if live != self._live:
            self._live = live
            self._pairing_since = now  # a new set of sensors gets a full timeout to pair
            for sensor in self.sensors:
                if sensor not in live:
                    self._waiting[sensor].clear()

    # -- input -----------------------------------------------------------------------------------------------
    def add(self, sensor: str, stamp_ns: int, now: float, item: Any) -> list[Group]:
        """An accepted message of `sensor`: the groups it completes (none while it waits for a partner)."""
        if sensor not in self._waiting:
            raise ConfigError(f"sensor {sensor!r} is not one of {', '.join(self.sensors)}")
        sample = Sample(sensor, int(stamp_ns), now, item)
        if sensor in self._last_arrival:
            self._gaps[sensor].append(now - self._last_arrival[sensor])
        self._last_arrival[sensor] = now
        self._newest_stamp[sensor] = sample.stamp_ns
        self._update_live(now)
        others = [s for s in self._live if s != sensor]
        partners = {}
        for other in others:
            near = [w for w in self._waiting[other] if abs(w.sample.stamp_ns - sample.stamp_ns) <= self.slop_ns]
            if not near:
                break
            partners[other] = min(near, key=lambda w: abs(w.sample.stamp_ns - sample.stamp_ns))
        else:
            if others:
                for other, partner in partners.items():  # the partner and what is older can pair no more
                    kept = [w for w in self._waiting[other] if w.sample.stamp_ns > partner.sample.stamp_ns]
                    self._waiting[other].clear()
                    self._waiting[other].extend(kept)
                self._waiting[sensor].clear()
                self._pairing_since = now
                members = {sensor: sample, **{o: w.sample for o, w in partners.items()}}
                return [Group(tuple(members[s] for s in self.sensors if s in members))]
        # Alone at once where no other sensor is live or pairing has failed for a while; it still waits, so
        # that a partner arriving within the slop makes the joint latent of the same instant.
        alone = not others or self.unpaired(now)
        self._waiting[sensor].append(_Waiting(sample, published=alone))
        return [Group((sample,))] if alone else []

    def poll(self, now: float) -> list[Group]:
        """On a timer: sensors that dropped out since; a sensor left alone releases its newest waiting message."""
        self._update_live(now)
        if len(self._live) != 1:
            return []
        waiting = self._waiting[self._live[0]]
        if not waiting or waiting[-1].published:
            return []
        waiting[-1].published = True
        return [Group((waiting[-1].sample,))]


@dataclass
class _Waiting:
    """A message in its sensor's buffer; `published`: already a latent alone (it may still pair, once)."""

    sample: Sample
    published: bool = False
