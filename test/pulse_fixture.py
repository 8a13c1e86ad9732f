"""A real sound device for tests on machines without sound hardware: a private PulseAudio daemon with a 4-channel
null sink, whose monitor records what is played (``av_pose_ros.audio.virtual_device``).

``virtual_sound_device`` (module scope) starts it on a private socket, points ``PULSE_SERVER`` at it (child
processes inherit it through ``conftest.child_env``), makes PortAudio re-scan so its ``pulse`` device appears,
and stops what it started afterwards. It skips only when the daemon genuinely cannot run or PortAudio cannot see
it, and the skip reason lists exactly what was tried and what came back. Import the fixture into a test module
with ``from pulse_fixture import virtual_sound_device_fixture`` and ask for ``virtual_sound_device``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from av_pose_ros.audio.virtual_device import VirtualDeviceError, VirtualSoundDevice

DEVICE = "pulse"


@pytest.fixture(scope="module", name="virtual_sound_device")
def virtual_sound_device_fixture():
    device = VirtualSoundDevice(daemonize=False)     # our child: stopped and reaped by us
    try:
        device.start()
    except VirtualDeviceError as err:
        shutil.rmtree(device.directory, ignore_errors=True)
        pytest.skip(f"PulseAudio cannot run on this machine: {err}")
    saved = {key: os.environ.get(key) for key in device.env()}
    os.environ.update(device.env())

    def restore():
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    from av_pose_ros.audio.duplex import find_device

    try:
        find_device(DEVICE, 4, 4, rescan=True)
    except (LookupError, ValueError) as err:
        device.stop()
        restore()
        shutil.rmtree(device.directory, ignore_errors=True)
        pytest.skip(f"pulseaudio runs ({' '.join(device.tried)}) but PortAudio has no usable {DEVICE!r} device "
                    f"(ALSA's pulse plugin comes with libasound2-plugins): {err}")
    print(f"virtual sound device: {device.server} (pid {device.pid()}, started here: {device.started_by_us})")
    yield device
    device.stop()
    restore()
    shutil.rmtree(device.directory, ignore_errors=True)
