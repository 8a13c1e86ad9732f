"""Audio input/output without ROS: the capture windows `audio_io_node` publishes, from three backends.

* ``duplex.DuplexSource`` (``device``): a sounddevice full-duplex stream that plays the probe on the speaker
  channels and records every mic channel, with latency compensation, device-clock stamps, xrun and device-loss
  handling;
* ``sim_source.SimSource`` (``sim``): the simulator renders each window, the person moving, with ground truth;
* ``wav_source.WavSource`` (``file``): a multichannel WAV plus the probe, cut into the same windows.

All three answer ``start()``, ``next_window(timeout_s) -> CaptureWindow | None``, ``status()`` (standing problems),
``stats()``, ``finished`` and ``close()``; ``sources.make_source(AudioIOSettings)`` builds one.
``calibration`` measures a device's round trip (``av-pose calibrate-audio``); ``virtual_device`` runs a PulseAudio
null sink so the device path works on a machine without sound hardware (``av-pose virtual-audio``).
"""

from .probe_setup import ProbeSettings, make_emission
from .window import ERROR, OK, WARN, AudioSource, CaptureWindow, Problem, SignalLimits

__all__ = ["AudioSource", "CaptureWindow", "ERROR", "OK", "Problem", "ProbeSettings", "SignalLimits", "WARN",
           "make_emission"]
