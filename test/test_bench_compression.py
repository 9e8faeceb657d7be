"""`vae-ros bench compression`: a small seeded run over the packaged LiDAR models, checked for structure and
for what each codec promises (lossless rows exact, quantised rows within their step, latents tiny)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from probe import header

from vae_ros.apps.benchmarks import compression, lidar_codecs
from vae_ros.apps.cli import main

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--messages", "3", "--stride", "3", "--quiet"]


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["codec"]: row for row in report["results"]}


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("compression")
    table = io.StringIO()  # capsys is per test; this run serves the whole module
    with contextlib.redirect_stdout(table):
        status = main(["bench", "compression", *SMALL, "--out", str(out)])
    assert status == 0
    return json.loads((out / "compression.json").read_text()), table.getvalue(), out


def test_every_codec_row_for_both_lidar_modalities(sim_run: tuple[dict[str, Any], str, Path]) -> None:
    report, table, out = sim_run
    assert [rep["modality"] for rep in report["reports"]] == ["scan", "pointcloud"]
    for rep in report["reports"]:
        rows = _rows(rep)
        assert rep["messages"] == 3 and rep["skipped"] == {}  # every dependency installs here
        families = [row["family"] for row in rep["results"]]
        assert families.count("lossless") == 2 and families.count("draco") == 2
        assert families.count("quantised") == 3 and families.count("latent") == 3
        for row in rep["results"]:
            assert row["bytes_mean"] > 0 and row["encode_ms"] > 0 and row["decode_ms"] > 0
            assert row["codec"] in table
        assert rows["raw (CDR)"]["ratio"] == 1.0
        assert "goal:" in table
    assert (out / "rate_distortion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lossless_rows_are_exact_and_smaller(sim_run: tuple[dict[str, Any], str, Path]) -> None:
    report, _, _ = sim_run
    for rep in report["reports"]:
        rows = _rows(rep)
        raw = rows["raw (CDR)"]
        for row in [raw] + [r for r in rep["results"] if r["family"] == "lossless"]:
            assert row["range_max_abs_m"] == 0.0 and row["missing_fraction"] == 0.0
            assert row["chamfer_m"] in (None, 0.0)
        assert rows["zstd -3"]["bytes_mean"] < raw["bytes_mean"]
        # lz4 finds few repeats in a scan's float ranges: on scans it may add its frame's few bytes.
        slack = 0.0 if rep["modality"] == "pointcloud" else 0.02 * raw["bytes_mean"] + 32
        assert rows["lz4"]["bytes_mean"] < raw["bytes_mean"] + slack


def test_quantised_rows_stay_within_their_step(sim_run: tuple[dict[str, Any], str, Path]) -> None:
    report, _, _ = sim_run
    for rep in report["reports"]:
        prefix = "range" if rep["modality"] == "scan" else "range img"
        raw_bytes = rep["raw_bytes_mean"]
        for step_cm in (1, 5):
            row = _rows(rep)[f"{prefix} {step_cm} cm + zstd"]
            assert row["range_max_abs_m"] <= step_cm / 200 + 1e-5  # half a step, float32 rounding
            assert 0 < row["range_mae_m"] <= step_cm / 200
            # A float32 point on the bottom ring may round to just past the last row, where
            # preprocess_pointcloud drops it: a few pixels per cloud go missing in the range-image metric.
            assert row["missing_fraction"] < (0.01 if rep["modality"] == "pointcloud" else 1e-9)
            assert row["bytes_mean"] < raw_bytes
        assert _rows(rep)[f"{prefix} 1 cm + zstd"]["bytes_mean"] > _rows(rep)[f"{prefix} 5 cm + zstd"]["bytes_mean"]
        fine = _rows(rep)["draco 11-bit"]
        assert fine["range_mae_m"] < 0.01 and fine["bytes_mean"] < raw_bytes
    cloud = report["reports"][1]
    # Points come back along the decoder's rays, the simulator's own: the projection costs under a millimetre.
    assert cloud["projection_chamfer_m"] < 0.002
    assert _rows(cloud)["range img 1 cm + zstd"]["chamfer_m"] < 0.01


def test_latents_are_a_stamped_image_of_a_few_bytes(sim_run: tuple[dict[str, Any], str, Path]) -> None:
    report, _, _ = sim_run
    for rep in report["reports"]:
        rows = _rows(rep)
        dim = rep["latent_dim"]
        f32, f16, int8 = (rows[f"latent {form} (D={dim})"] for form in ("f32", "f16", "int8"))
        # One sensor_msgs/Image per message: same header, only the values shrink.
        assert f32["bytes_mean"] - f16["bytes_mean"] == pytest.approx(2 * dim, abs=4)
        assert f16["bytes_mean"] - int8["bytes_mean"] == pytest.approx(dim, abs=4)
        assert f32["bytes_max"] < 200 and f32["ratio"] > 10
        # Quantising the latent costs almost nothing in reconstruction.
        assert abs(int8["range_mae_m"] - f32["range_mae_m"]) < 0.02
        assert 0 < f32["range_mae_m"] < 1.0
    assert _rows(report["reports"][1])[f"latent f32 (D={report['reports'][1]['latent_dim']})"]["ratio"] > 100


def test_int8_latent_quantisation_is_the_stated_affine_map() -> None:
    z = np.array([-5.0, -4.0, -0.01, 0.0, 0.5, 3.99, 9.0], dtype=np.float32)
    codes = lidar_codecs.quantise_int8(z)
    assert codes.dtype == np.int8 and codes.min() == -127 and codes.max() == 127
    back = lidar_codecs.dequantise_int8(codes)
    inside = np.abs(z) <= 4
    assert np.all(np.abs(back[inside] - z[inside]) <= 4 / 127 / 2 + 1e-6)
    assert back[0] == pytest.approx(-4.0) and back[-1] == pytest.approx(4.0)  # clipped at the prior's 4 sigma


def test_latent_message_layout() -> None:
    msg = lidar_codecs.latent_image_msg(np.arange(16, dtype=np.float32), "32FC1", header("lidar_link", 7 * 10**9))
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian) == (1, 16, 64, "32FC1", 0)
    assert msg.header.frame_id == "lidar_link" and msg.header.stamp.sec == 7
    assert np.array_equal(np.frombuffer(bytes(msg.data), "<f4"), np.arange(16))


def test_chamfer_distance() -> None:
    a = np.zeros((1, 3))
    b = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert lidar_codecs.chamfer_distance(a, b) == pytest.approx(0.5 * (1.0 + 1.5))
    assert lidar_codecs.chamfer_distance(b, b) == 0.0
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    brute = 0.5 * (lidar_codecs._nearest_brute(p, q, block=64).mean() + lidar_codecs._nearest_brute(q, p).mean())
    assert lidar_codecs.chamfer_distance(p, q) == pytest.approx(brute)  # scipy and the fallback agree


def test_missing_dependency_leaves_its_rows_out_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "DracoPy", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    scans, _ = compression.simulate_messages(2, stride=2)
    rep = compression.benchmark_modality("scan", REPO / "models" / "scan_default", scans, "test")
    assert set(rep.skipped) == {"draco", "lz4"} and "not installed" in rep.skipped["draco"]
    assert not any(row.family == "draco" or row.codec == "lz4" for row in rep.results)
    assert any(row.codec.startswith("zstd") for row in rep.results)


def test_scans_of_another_geometry() -> None:
    """A 720-beam scan whose angle_max is one increment past its last beam (a common driver habit)."""
    from vae_ros.core.conversions.lidar import scan_to_msg

    sim_scans, _ = compression.simulate_messages(2, stride=2)
    scans = []
    for sim in sim_scans:
        increment = sim.angle_increment / 2
        msg = scan_to_msg(np.repeat(np.asarray(sim.ranges), 2), sim.angle_min - increment / 2, increment,
                          sim.range_min, sim.range_max, "laser", sim.header.stamp)
        msg.angle_max = msg.angle_min + increment * 720
        scans.append(msg)
    rep = compression.benchmark_modality("scan", REPO / "models" / "scan_default", scans, "test")
    rows = {row.codec: row for row in rep.results}
    assert rep.messages == 2 and rows["zstd -3"].range_max_abs_m == 0.0
    assert rows["range 1 cm + zstd"].range_max_abs_m <= 0.005 + 1e-5
    assert rows["range 20 cm, 1/8 beams + zstd"].missing_fraction == 0.0
    assert rows["draco 11-bit"].range_mae_m < 0.01
    latent = rows[f"latent f32 (D={rep.latent_dim})"]
    assert 0 < latent.range_mae_m < 1.0 and latent.missing_fraction < 0.05


def test_bag_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = tmp_path / "bag"
    assert main(["collect", "--out", str(bag), "--duration", "0.4", "--no-camera", "--lidar", "scan",
                 "--quiet", "--policy-seed", "5"]) == 0
    capsys.readouterr()
    assert main(["bench", "compression", "--bag", str(bag), "--topic", "scan", "--messages", "3", "--quiet",
                 "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "compression.json").read_text())
    assert [rep["modality"] for rep in report["reports"]] == ["scan"]
    assert report["reports"][0]["messages"] == 3 and "/scan" in report["reports"][0]["source"]
    assert "latent int8" in capsys.readouterr().out

    assert main(["bench", "compression", "--bag", str(bag), "--topic", "odom", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "Odometry" in err and err.count("\n") == 1
    assert main(["bench", "compression", "--bag", str(bag), "--out", str(tmp_path / "o3")]) == 2
    assert "--bag needs --topic" in capsys.readouterr().err


def test_wrapper_runs_from_the_repository() -> None:
    result = subprocess.run([sys.executable, "bench/compression.py", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--messages" in result.stdout and "--bag" in result.stdout


def test_plot_labels_overlap_neither_each_other_nor_the_markers() -> None:
    """The rate-distortion labels once overlapped (issue 21): rows at nearly the same bytes and error, as the
    lossless rows and the three latent precisions are, now get labels that never overlap, inside the axes;
    points on top of each other share one label."""
    from matplotlib.text import Text

    from vae_ros.core.plots import _figure

    points = [(72.0, 0.3), (88.0, 0.3), (120.0, 0.3), (133.0, 0.18), (394.0, 0.0125), (576.0, 0.0025),
              (568.0, 0.019), (839.0, 0.0013), (1376.0, 0.0), (1504.0, 0.0), (1526.0, 0.0)]
    labels = ["int8", "f16", "f32", "20 cm 1/8", "5 cm", "1 cm", "draco 8b", "draco 11b", "zstd3", "raw", "lz4"]
    fig = _figure(6.5, 4.6)
    ax = fig.subplots()
    for x, y in points:
        ax.scatter([x], [y], s=45)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(0.0, 1.0)
    ax.legend(["rows"], loc="lower left")
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    compression._place_labels(ax, points, labels, renderer, [45.0] * len(points))
    texts = [t for t in ax.texts if t.get_text()]
    # raw (1504 B) and lz4 (1526 B) coincide on the plot: one label for both (zstd3 may join them); each row
    # is named exactly once, the latent precisions apart.
    named = [name for t in texts for name in t.get_text().split(", ")]
    assert sorted(named) == sorted(labels)
    assert any("raw, lz4" in t.get_text() for t in texts)
    assert {"int8", "f16", "f32"} <= {t.get_text() for t in texts}
    boxes = []
    for text in texts:
        text.update_positions(renderer)
        boxes.append(Text.get_window_extent(text, renderer))
    frame = ax.get_window_extent(renderer)
    for i, box in enumerate(boxes):
        assert frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1), texts[i].get_text()
        for j in range(i):
            assert not box.overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
        for x, y in points:
            px, py = ax.transData.transform((x, y))
            assert not box.contains(px, py), (texts[i].get_text(), x, y)
