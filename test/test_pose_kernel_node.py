"""pose_kernel_node as its own process with real rclpy: simulated captures in, pose kernels and the PointCloud2
encoding out, with the capture's stamp, the rig frame, the pairs' TF frames and body echoes where the person is;
bad windows (channel count, NaN, clipping, sample rate, no probe, missing TF) give diagnostics, never output, and the
node recovers; the empty-room capture service answers."""

import dataclasses

import numpy as np
import pytest

from av_pose_ros.ros.diagnostics import OK

from ros_harness import NodeProcess, Probe, wait_for_subscriber

NODE = "pose_kernel_node"
RIG_FRAME = "camera_link"


@pytest.fixture(scope="module")
def world():
    from av_pose_ros.sim.body import facing_yaw
    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import RoomPhysics, load_scenario

    scene = load_scenario("default").sample(np.random.default_rng(4))
    person = dataclasses.replace(scene.person, pose="offer_left", stature_m=1.75, position_xy=(2.0, 0.1),
                                 yaw=facing_yaw((2.0, 0.1), (0.0, 0.0)))
    # body-wall ghosts and the body's shadow off: the oracle below is the body's own echoes (test_sim_physics.py)
    scene = dataclasses.replace(scene, audio=dataclasses.replace(scene.audio, snr_db=40.0), person=person,
                                physics=RoomPhysics())
    sim = Simulator()
    rng = np.random.default_rng(0)
    empty = [sim.render_capture(scene, k, person=False, rng=rng) for k in range(3)]
    occupied = [sim.render_capture(scene, k, rng=rng) for k in range(3, 5)]
    return scene, empty, occupied


def frame_msg(cap, stamp_ns, sequence, **changes):
    from av_pose_ros.ros.conversions import Audio, audio_to_msg

    fields = dict(stamp_ns=stamp_ns, frame_id=RIG_FRAME, audio=cap.recording, sample_rate=cap.fs,
                  mic_frames=[f"mic_{i}" for i in range(cap.recording.shape[0])], probe=cap.emissions,
                  speaker_frames=[f"speaker_{i}" for i in range(cap.emissions.shape[0])], probe_type="chirp",
                  sequence=sequence)
    fields.update(changes)
    return audio_to_msg(Audio(**fields))


def diagnostic_value(probe, key):
    status = probe.diagnostics.get(NODE)
    return None if status is None else next((kv.value for kv in status.values if kv.key == key), None)


def test_pose_kernel_node_end_to_end(ros_context, world):
    from sensor_msgs.msg import PointCloud2
    from std_srvs.srv import Trigger

    from av_pose_ros.acoustics.physics import speed_of_sound
    from av_pose_ros.msg import AudioFrame, PoseKernel
    from av_pose_ros.primitives.geometry import apply_transform, make_transform
    from av_pose_ros.ros.conversions import kernels_from_msg, ns_from_time
    from av_pose_ros.ros.qos import SENSOR_QOS
    from av_pose_ros.ros.tf import TfPublisher, transform_msg

    scene, empty, occupied = world
    rig = scene.rig
    probe = Probe(ros_context)
    tf = TfPublisher(probe.node)
    tf.send_static([transform_msg(RIG_FRAME, f"speaker_{i}", make_transform(np.eye(3), p), 0)
                    for i, p in enumerate(rig.speakers)]
                   + [transform_msg(RIG_FRAME, f"mic_{i}", make_transform(np.eye(3), p), 0)
                      for i, p in enumerate(rig.mics)])
    frames = probe.publisher(AudioFrame, "audio/frames", SENSOR_QOS)
    kernels = probe.collect(PoseKernel, "audio/pose_kernel", SENSOR_QOS)
    clouds = probe.collect(PointCloud2, "audio/encoding", SENSOR_QOS)
    client = probe.node.create_client(Trigger, "audio/capture_empty_room")
    params = {"empty_room_frames": 3, "publish_encoding": True, "temperature_c": scene.audio.temperature_c,
              "encoding_spacing_m": 0.15}
    with NodeProcess(NODE, params) as node:
        try:
            wait_for_subscriber(probe, frames, 60.0)
            sequence = iter(range(1, 10_000))

            # 1. The empty room: the first windows are captured (capture_on_start); nothing unsubtracted is published.
            def empty_room_ready():
                return diagnostic_value(probe, "empty_room_ready") == "True"

            for k in range(200):
                frames.publish(frame_msg(empty[k % len(empty)], 1_000 + k, next(sequence)))
                if probe.spin_until(empty_room_ready, 0.15):
                    break
            assert empty_room_ready(), f"no empty-room capture: {probe.diagnostic_message(NODE)} {node.stop()}"
            assert all(m.empty_room_subtracted for m in kernels)

            def send(cap, stamp_ns, **changes):
                """Publish until the kernel with this stamp arrives (best effort may drop a frame)."""
                for _ in range(20):
                    frames.publish(frame_msg(cap, stamp_ns, next(sequence), **changes))
                    if probe.spin_until(lambda: any(ns_from_time(m.header.stamp) == stamp_ns for m in kernels), 1.0):
                        return next(m for m in kernels if ns_from_time(m.header.stamp) == stamp_ns)
                raise AssertionError(f"no kernel for stamp {stamp_ns}: {probe.diagnostic_message(NODE)}")

            # 2. A person: kernel stamped with the capture, pairs named by TF frame, body echoes at the joints' delays.
            stamp = 1_700_000_000_123_000_000
            cap = occupied[0]
            msg = send(cap, stamp)
            k = kernels_from_msg(msg)
            assert k.frame_id == RIG_FRAME and k.empty_room_subtracted and k.kernels.shape == (4, 1200)
            assert k.speaker_frames == [f"speaker_{i}" for i in range(4)] and k.mic_frames == [f"mic_{i}" for i in
                                                                                             range(4)]
            assert k.speed_of_sound == pytest.approx(speed_of_sound(scene.audio.temperature_c), rel=1e-6)
            assert k.snr_db > 12
            speakers, mics = cap.speakers[cap.pairs[:, 0]], cap.mics[cap.pairs[:, 1]]
            for p in range(4):
                delay = (np.linalg.norm(cap.joints - speakers[p], axis=1) + np.linalg.norm(cap.joints - mics[p], axis=1)
                         ) / k.speed_of_sound * k.sample_rate
                body = np.zeros(1200, bool)
                body[int(delay.min()) - 25: int(delay.max()) + 25] = True
                ratio_db = 10 * np.log10(np.mean(k.kernels[p, body] ** 2) / np.mean(k.kernels[p, ~body] ** 2))
                print(f"pair {p}: body span / elsewhere {ratio_db:.1f} dB")
                assert ratio_db > 6

            # 3. The encoding: PointCloud2 in the rig frame, strongest voxel near the person.
            assert probe.spin_until(lambda: any(ns_from_time(c.header.stamp) == stamp for c in clouds), 10.0)
            cloud = next(c for c in clouds if ns_from_time(c.header.stamp) == stamp)
            assert cloud.header.frame_id == RIG_FRAME and cloud.point_step == 16 and cloud.width > 0
            assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"]
            points = np.frombuffer(bytes(cloud.data), dtype="<f4").reshape(-1, 4)
            strongest = points[np.argmax(points[:, 3]), :3]
            joints = apply_transform(np.linalg.inv(rig.base_from_camera_link), cap.joints)   # into camera_link
            print("strongest voxel", strongest.round(2), "nearest joint distance",
                  np.linalg.norm(joints - strongest, axis=1).min().round(2))
            assert np.linalg.norm(joints - strongest, axis=1).min() < 0.5

            # 4. Bad windows: a diagnostic with the reason, no kernel, the node stays up.
            count = len(kernels)
            bad_cases = {
                "channel_count": dict(audio=cap.recording[:3], mic_frames=["mic_0", "mic_1", "mic_2"]),
                "NaN": dict(audio=np.where(np.arange(cap.recording.shape[1]) == 7, np.nan, cap.recording)),
                "clipped": dict(audio=np.clip(cap.recording * 50, -1, 1)),
                "sample_rate": dict(sample_rate=44100),
                "no_probe": dict(audio=np.zeros_like(cap.recording)),
                "tf": dict(mic_frames=["mic_0", "mic_1", "mic_2", "mic_9"]),
            }
            for code, changes in bad_cases.items():
                bad = frame_msg(cap, 2_000, next(sequence), **changes)
                assert probe.publish_until(frames, bad, lambda c=code: c in probe.diagnostic_message(NODE), 20.0,
                                           0.3), f"{code}: {probe.diagnostic_message(NODE)}"
                print(code, "->", probe.diagnostic_message(NODE))
            probe.spin_for(0.5)
            assert len(kernels) == count and node.alive()

            # 5. Good windows again: kernels and, once the input problems have not recurred for a moment, a clean
            # diagnostic (a stream keeps sending; bad messages stay visible for the diagnostics' hold time).
            for i in range(20):
                send(occupied[1], 3_000 + i)
                if probe.spin_until(lambda: probe.diagnostic_level(NODE) == OK, 0.5):
                    break
            assert probe.diagnostic_level(NODE) == OK, probe.diagnostic_message(NODE)

            # 6. The empty-room service answers and starts a capture.
            assert client.wait_for_service(timeout_sec=10.0)
            future = client.call_async(Trigger.Request())
            assert probe.spin_until(future.done, 10.0)
            assert future.result().success and "empty room" in future.result().message
        finally:
            probe.close()
