"""Every launch file through the real ROS 2 launch (Jazzy and Humble lines), as `ros2 launch vae_ros FILE`.

The package is colcon-built and found through the ament index; `ros2launch.api.launch_a_launch_file` runs the
file in its own process (test/real_launch.py). A probe node in this process then checks what a user would:
the nodes are up under their names, the topics carry messages, topics that must not exist do not, and the
nodes report the parameters that the params file and the launch arguments give them. Ctrl-C (SIGINT) must
stop every process the launch started. One row of CASES per launch run: a new launch file is one entry.

test_launch_files.py keeps a fake `launch` for what the real one cannot show here (gazebo.launch.py needs
ros_gz_sim and Gazebo, which no machine here has; many argument combinations cost too much as processes).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import real_launch
from probe import Probe as SpinningProbe

pytestmark = [pytest.mark.ros, pytest.mark.slow]

@dataclass(frozen=True)
class Case:
    """One `ros2 launch vae_ros FILE arguments` run and what it must show."""

    id: str
    file: str
    arguments: dict[str, str]
    # Fully qualified node name -> parameters it must report (name -> value).
    nodes: dict[str, dict[str, Any]]
    # Topics that must carry messages: name -> type ("pkg/msg/Type").
    topics: dict[str, str] = field(default_factory=dict)
    # Topics that must have a subscriber (inputs the launch cannot feed itself).
    subscribed: tuple[str, ...] = ()
    # Topics nobody may publish.
    unpublished: tuple[str, ...] = ()
    distros: tuple[str, ...] = real_launch.DISTROS
    # Extra environment of the launch (and so of its nodes); "{tmp}" in any text is the test's folder.
    environment: dict[str, str] = field(default_factory=dict)
    # Log lines (regular expressions) -> how many times each must appear in the launch's output.
    log_counts: dict[str, int] = field(default_factory=dict)
    # Log lines (regular expressions) that must appear in this order.
    log_order: tuple[str, ...] = ()
    # /diagnostics: status name (a substring) -> key -> a substring of its value.
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)
    # Files (globs below the test's folder) -> how many must exist once the nodes are up.
    files: dict[str, int] = field(default_factory=dict)

    def resolved(self, tmp: Path) -> Case:
        """This case with "{tmp}" replaced everywhere (arguments, expected parameters, environment)."""
        def sub(value: Any) -> Any:
            return value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value

        return dataclasses.replace(
            self, arguments={k: sub(v) for k, v in self.arguments.items()},
            nodes={n: {k: sub(v) for k, v in p.items()} for n, p in self.nodes.items()},
            environment={k: sub(v) for k, v in self.environment.items()})


CASES = [
    # seed:=3 is the simulator's world seed; decoder_node's prior seed (also `seed`) must keep its file value.
    Case("perception-image", "perception.launch.py", {"seed": "3"},
         nodes={"/sim_node": {"seed": 3, "publish_camera": True, "lidar": "scan"},
                "/encoder_node": {"modality": "image", "use_sim_time": True, "publish_anomaly_score": True},
                "/decoder_node": {"modality": "image", "seed": 0, "use_sim_time": True}},
         topics={"/vae/latent": "std_msgs/msg/Float32MultiArray", "/vae/latent_stamped": "sensor_msgs/msg/Image",
                 "/vae/anomaly_score": "std_msgs/msg/Float32", "/clock": "rosgraph_msgs/msg/Clock"}),
    # A LiDAR pipeline in a namespace: the simulator does not render its camera.
    Case("perception-scan", "perception.launch.py",
         {"modality": "scan", "namespace": "robot1", "backend": "onnxruntime", "initial_pose": "[0.5, 0.0, 1.0]"},
         nodes={"/robot1/sim_node": {"publish_camera": False, "lidar": "scan", "seed": 0,
                                     "initial_pose": [0.5, 0.0, 1.0]},
                "/robot1/encoder_node": {"modality": "scan", "backend": "onnxruntime"},
                "/robot1/decoder_node": {"modality": "scan", "backend": "onnxruntime"}},
         topics={"/robot1/scan": "sensor_msgs/msg/LaserScan", "/robot1/vae/latent": "std_msgs/msg/Float32MultiArray",
                 "/robot1/vae/scan": "sensor_msgs/msg/LaserScan"},
         unpublished=("/robot1/camera/image_raw",), distros=("jazzy",)),
    Case("sim", "sim.launch.py", {"lidar": "pointcloud", "publish_camera": "false", "rate": "20"},
         nodes={"/sim_node": {"lidar": "pointcloud", "publish_camera": False, "rate": 20.0}},
         topics={"/lidar/points": "sensor_msgs/msg/PointCloud2", "/odom": "nav_msgs/msg/Odometry"},
         unpublished=("/camera/image_raw", "/scan"), distros=("jazzy",)),
    Case("encoder", "encoder.launch.py", {"modality": "scan", "scan_topic": "/front/scan", "namespace": "robot2"},
         nodes={"/robot2/encoder_node": {"modality": "scan", "backend": "auto", "use_sim_time": False}},
         subscribed=("/front/scan",), distros=("jazzy",)),
    Case("decoder", "decoder.launch.py", {"generate": "true", "generate_rate": "5.0"},
         nodes={"/decoder_node": {"generate": True, "generate_rate": 5.0, "modality": ""}},
         topics={"/vae/reconstruction": "sensor_msgs/msg/Image"}, distros=("jazzy",)),
    Case("base-station", "base_station.launch.py", {"robot_namespace": "robot7", "modality": "scan"},
         nodes={"/base/decoder_node": {"modality": "scan", "use_sim_time": False}},
         subscribed=("/robot7/vae/latent_stamped",), distros=("jazzy",)),
    # TensorRT on a Jetson without torch_tensorrt (really absent here) and with onnxruntime-gpu (faked at its
    # provider API, test/fake_gpu): ONNX Runtime's TensorRT provider takes over, said once per node in the log
    # and in /diagnostics; the engines go to the engine cache; the warm-up runs before the encoder subscribes.
    Case("jetson", "jetson.launch.py",
         {"modality": "scan", "decoder": "true", "sim": "true", "engine_cache": "{tmp}/engines", "warmup": "3"},
         nodes={"/encoder_node": {"backend": "tensorrt", "device": "cuda", "engine_cache": "{tmp}/engines",
                                  "warmup": 3, "use_sim_time": True, "threads": 1},
                "/decoder_node": {"backend": "tensorrt", "device": "cuda", "engine_cache": "{tmp}/engines",
                                  "warmup": 3},
                "/sim_node": {"publish_camera": False, "lidar": "scan"}},
         topics={"/vae/latent": "std_msgs/msg/Float32MultiArray", "/vae/scan": "sensor_msgs/msg/LaserScan"},
         environment={"VAE_ROS_FAKE_GPU": "tensorrt,cuda"},
         log_counts={r"\[encoder_node\]: backend 'tensorrt' runs as onnxruntime-tensorrt \(TensorrtExecutionProvider, "
                     r"engines in .*/engines/[0-9a-f]{16}/onnxruntime-trt\w+\) because torch_tensorrt": 1,
                     r"\[decoder_node\]: backend 'tensorrt' runs as onnxruntime-tensorrt": 1,
                     r"\[encoder_node\]: warm-up: 3 runs": 1, r"\[decoder_node\]: warm-up: 3 runs": 1},
         log_order=(r"\[encoder_node\]: warm-up: 3 runs", r"\[encoder_node\]: /scan: 1 publisher"),
         diagnostics={"encoder_node: encoder": {"backend": "onnxruntime-tensorrt", "fallback": "because torch_tensorrt",
                                                "warm_up": "3 runs"},
                      "decoder_node: decoder": {"fallback": "runs as onnxruntime-tensorrt"}},
         files={"engines/*/onnxruntime-trt*/fake_*.engine": 2}),  # the encoder's and the decoder's graph
    # Latent servoing: the simulator, the scan encoder on the control model and the servo, which waits for a goal
    # and publishes zero velocity meanwhile.
    Case("servo", "servo.launch.py", {"seed": "1", "initial_pose": "[0.3, 0.2, 0.5]"},
         # The camera is rendered for the servo's view memory (goal images for the LiDAR model).
         nodes={"/sim_node": {"seed": 1, "initial_pose": [0.3, 0.2, 0.5], "publish_camera": True},
                "/encoder_node": {"modality": "scan", "use_sim_time": True},
                "/latent_servo_node": {"use_sim_time": True, "view_memory": 3000}},
         topics={"/vae/latent_stamped": "sensor_msgs/msg/Image", "/cmd_vel": "geometry_msgs/msg/Twist"},
         distros=("jazzy",)),
]


# ----------------------------------------------------------------------------------------------------------
# Fixtures: launch wheels per distro, one colcon install per session
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def colcon_installed(tmp_path_factory: pytest.TempPathFactory) -> real_launch.Installed:
    reason = real_launch.missing_reason("jazzy") and real_launch.missing_reason("humble")
    if reason:
        pytest.skip(reason)
    return real_launch.colcon_install(tmp_path_factory.mktemp("colcon"))


@pytest.fixture
def launched(colcon_installed: real_launch.Installed, tmp_path: Path
             ) -> Iterator[Callable[[str, str, dict[str, str]], real_launch.LaunchProcess]]:
    """launched(distro, file, arguments) -> the running launch; stopped (Ctrl-C, then kill) at the end."""
    started: list[real_launch.LaunchProcess] = []

    def start(distro: str, file_name: str, arguments: dict[str, str],
              environment: dict[str, str] | None = None) -> real_launch.LaunchProcess:
        reason = real_launch.missing_reason(distro)
        if reason:
            pytest.skip(reason)
        env = real_launch.launch_env(distro, colcon_installed, tmp_path / "ros_log", **(environment or {}))
        if "VAE_ROS_FAKE_GPU" in env:  # its sitecustomize fakes onnxruntime-gpu in every process started
            env["PYTHONPATH"] = os.pathsep.join([str(real_launch.REPO / "test" / "fake_gpu"), env["PYTHONPATH"]])
        process = real_launch.LaunchProcess(env, tmp_path / "launch.log", file_name, arguments)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class Probe(SpinningProbe):
    """A node in its own rclpy context, spun on a thread: graph queries, subscriptions, parameter calls."""

    def __init__(self) -> None:
        super().__init__("launch_probe", own_context=True)
        self.counts: dict[str, int] = {}

    def count(self, topic: str, type_name: str) -> None:
        from rclpy.qos import qos_profile_sensor_data  # best effort: matches reliable publishers too

        package, _, name = type_name.split("/")
        msg_type = getattr(importlib.import_module(f"{package}.msg"), name)
        self.counts[topic] = 0

        def on_message(_: Any) -> None:
            with self.lock:
                self.counts[topic] += 1

        self.node.create_subscription(msg_type, topic, on_message, qos_profile_sensor_data)

    def received(self, topic: str) -> int:
        with self.lock:
            return self.counts[topic]

    def collect_diagnostics(self) -> None:
        """Keep the latest values of every /diagnostics status, by status name."""
        from diagnostic_msgs.msg import DiagnosticArray

        self.statuses: dict[str, dict[str, str]] = {}

        def on_array(msg: Any) -> None:
            with self.lock:
                for status in msg.status:
                    self.statuses[status.name] = {kv.key: kv.value for kv in status.values}

        self.node.create_subscription(DiagnosticArray, "/diagnostics", on_array, 10)

    def diagnostic(self, name_part: str) -> dict[str, str] | None:
        with self.lock:
            return next((v for name, v in self.statuses.items() if name_part in name), None)

    def diagnostic_names(self) -> list[str]:
        with self.lock:
            return sorted(self.statuses)

    def node_names(self) -> set[str]:
        return {"/".join(p for p in (ns.rstrip("/"), name) if p) if ns != "/" else "/" + name
                for name, ns in self.node.get_node_names_and_namespaces()}

    def parameters(self, node: str, names: list[str], timeout: float = 10.0) -> dict[str, Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self.node.create_client(GetParameters, f"{node}/get_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"{node}/get_parameters is not offered")
            future = client.call_async(GetParameters.Request(names=names))
            end = time.monotonic() + timeout
            while not future.done() and time.monotonic() < end:
                time.sleep(0.05)
            if not future.done():
                raise AssertionError(f"{node} did not answer get_parameters")
            return {name: parameter_value_to_python(value)
                    for name, value in zip(names, future.result().values, strict=True)}
        finally:
            self.node.destroy_client(client)



@pytest.fixture
def probe() -> Iterator[Probe]:
    probe = Probe()
    yield probe
    probe.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(what())
        time.sleep(0.1)


# ----------------------------------------------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------------------------------------------
CASE_PARAMS = [pytest.param(distro, case, id=f"{distro}-{case.id}") for case in CASES for distro in case.distros]


@pytest.mark.parametrize(("distro", "case"), CASE_PARAMS)
def test_launch_file_through_the_real_launch(launched: Callable[..., real_launch.LaunchProcess], probe: Probe,
                                             tmp_path: Path, distro: str, case: Case) -> None:
    case = case.resolved(tmp_path)
    # Launch escalates to SIGTERM 5 s after Ctrl-C by default; a loaded CI machine can need longer to stop
    # torch-heavy nodes. sigterm_timeout also has to pass through the included files' scopes.
    running = launched(distro, case.file, {**case.arguments, "sigterm_timeout": "30"}, case.environment)
    for topic, type_name in case.topics.items():
        probe.count(topic, type_name)
    if case.diagnostics:
        probe.collect_diagnostics()

    def log() -> str:
        return f"\n--- ros2 launch vae_ros {case.file} ({distro}) ---\n" + running.output()[-6000:]

    def exited() -> bool:
        return running.process.poll() is not None

    wait_until(lambda: exited() or set(case.nodes) <= probe.node_names(), 60,
               lambda: f"nodes {sorted(set(case.nodes) - probe.node_names())} did not come up{log()}")
    assert not exited(), f"the launch ended by itself{log()}"
    wait_until(lambda: exited() or all(probe.received(t) for t in case.topics), 60,
               lambda: f"no messages on {[t for t in case.topics if not probe.received(t)]}{log()}")
    wait_until(lambda: exited() or all(probe.node.count_subscribers(t) for t in case.subscribed), 30,
               lambda: f"nobody subscribes to {[t for t in case.subscribed if not probe.node.count_subscribers(t)]}"
                       f"{log()}")
    for topic in case.unpublished:
        assert probe.node.count_publishers(topic) == 0, f"{topic} is published{log()}"
    for node, expected in case.nodes.items():
        reported = probe.parameters(node, list(expected))
        assert reported == expected, f"{node} reports {reported}{log()}"
    for status_name, expected_values in case.diagnostics.items():
        wait_until(lambda name=status_name: probe.diagnostic(name) is not None, 30,
                   lambda name=status_name: f"no /diagnostics status {name!r} in {probe.diagnostic_names()}{log()}")
        values = probe.diagnostic(status_name) or {}
        for key, text in expected_values.items():
            assert text in values.get(key, ""), f"/diagnostics {status_name}: {key}={values.get(key)!r}{log()}"
    for pattern, count in case.files.items():
        found = list(tmp_path.glob(pattern))
        assert len(found) == count, f"{len(found)} files {pattern} below {tmp_path}, not {count}{log()}"
    assert not exited(), f"the launch ended by itself{log()}"

    status = running.stop(timeout=60)
    assert status is not None, f"Ctrl-C did not stop every process the launch started{log()}"
    output = running.output()
    for node in case.nodes:
        executable = node.rsplit("/", 1)[-1]
        assert re.search(rf"\[{executable}-\d+\]: process has finished cleanly", output), log()
    assert "process has died" not in output, log()
    assert "failed to terminate" not in output, log()  # each node stops on Ctrl-C itself, not by escalation
    for pattern, count in case.log_counts.items():
        assert len(re.findall(pattern, output)) == count, f"{pattern!r} is not in the log {count} time(s){log()}"
    positions = [re.search(pattern, output) for pattern in case.log_order]
    assert all(positions), f"{[p for p, m in zip(case.log_order, positions, strict=True) if not m]} not logged{log()}"
    starts = [match.start() for match in positions if match]
    assert starts == sorted(starts), f"not logged in the order {case.log_order}{log()}"


@pytest.mark.parametrize("distro", ["jazzy"])
def test_launch_testing_test_of_the_perception_pipeline(colcon_installed: real_launch.Installed, tmp_path: Path,
                                                        distro: str) -> None:
    """test/launch_tests/perception_launch_test.py through `launch_test`, as on a robot."""
    reason = real_launch.missing_reason(distro)
    if reason:
        pytest.skip(reason)
    env = real_launch.launch_env(distro, colcon_installed, tmp_path / "ros_log")
    test_file = real_launch.REPO / "test" / "launch_tests" / "perception_launch_test.py"
    status, output = real_launch.run_in_group([sys.executable, "-m", "launch_testing.launch_test", str(test_file)],
                                              env, tmp_path, timeout=180)
    assert status == 0, output[-8000:]
    assert "Ran 2 tests" in output and "Ran 1 test" in output, output[-8000:]  # active, then post-shutdown
