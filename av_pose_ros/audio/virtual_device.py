"""A real sound device without hardware: a private PulseAudio daemon with a null sink and its monitor.

``VirtualSoundDevice`` starts ``pulseaudio`` (Debian packages ``pulseaudio`` and ``libasound2-plugins``, which
gives ALSA's ``pulse`` PCM that PortAudio and sounddevice list as the device ``pulse``) on a private socket in a
temporary directory, with one null sink ``avsim`` (4 channels, 48 kHz by default) as the default sink and its
monitor ``avsim.monitor`` as the default source: whatever is played on output channel i comes back on input
channel i, after the server's round trip. ``PULSE_SERVER`` in the environment points clients at it; the daemon
is private, so it neither disturbs nor depends on a desktop's sound server or another user's test.

Shared memory is disabled (``--disable-shm``): when the server dies, a client that received audio through shared
memory can deadlock inside libpulse (the ALSA plugin's poll waits on a lock held by a thread that waits for the
dead server), and the process can then never close its stream; over the socket alone it gets an error instead.

The null sink's channel map is set to ALSA's 4-channel order (front-left, front-right, rear-left, rear-right);
with PulseAudio's default map for 4 channels (FL, FC, FR, RC) the ALSA plugin's stream is remixed and inputs 2-3
come back as copies of 0-1.

Command line: ``av-pose virtual-audio start`` prints the ``export PULSE_SERVER=...`` line; ``stop`` ends it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

DEFAULT_DIR = Path(tempfile.gettempdir()) / "av_pose_pulse"
ALSA_4CH_MAP = "front-left,front-right,rear-left,rear-right"


class VirtualDeviceError(RuntimeError):
    """The virtual device cannot run here; the message says exactly what was tried and what came back."""


class VirtualSoundDevice:
    def __init__(self, directory: str | Path | None = None, channels: int = 4, rate: int = 48000,
                 sink: str = "avsim", daemonize: bool = True):
        self.directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="av_pose_pulse_"))
        self.channels, self.rate, self.sink = int(channels), int(rate), sink
        self.socket = self.directory / "native"
        self.started_by_us = False
        self.daemonize = bool(daemonize)     # False: a child process of ours (reaped by us, gone with us)
        self.process: subprocess.Popen | None = None
        self.tried: list[str] = []

    @property
    def server(self) -> str:
        return f"unix:{self.socket}"

    def env(self) -> dict[str, str]:
        """Variables a client process needs to use this device."""
        return {"PULSE_SERVER": self.server, "PULSE_RUNTIME_PATH": str(self.directory)}

    def command(self) -> list[str]:
        channel_map = f" channel_map={ALSA_4CH_MAP}" if self.channels == 4 else ""
        return ["pulseaudio", f"--daemonize={'yes' if self.daemonize else 'no'}", "--exit-idle-time=-1", "-n",
                "--use-pid-file=yes", "--disallow-exit", "--log-target=stderr", "--disable-shm=yes",
                f"--load=module-null-sink sink_name={self.sink} rate={self.rate} channels={self.channels}"
                f"{channel_map}",
                f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1"]

    def _pactl(self, *args: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
        env = dict(os.environ, **self.env())
        return subprocess.run(["pactl", *args], env=env, capture_output=True, text=True, timeout=timeout)

    def running(self) -> bool:
        if not self.socket.exists() or not shutil.which("pactl"):
            return False
        try:
            return self._pactl("info", timeout=3.0).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self, timeout_s: float = 10.0) -> VirtualSoundDevice:
        """Start the daemon unless one already answers on this socket. Raises VirtualDeviceError."""
        if self.running():
            self._set_defaults()
            return self
        if not shutil.which("pulseaudio"):
            raise VirtualDeviceError("`pulseaudio` is not on PATH (Debian package pulseaudio; scripts/bootstrap.py "
                                     "installs it with libasound2-plugins)")
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        # nothing answers on our socket, so a pid file here is stale (a killed daemon can linger as a zombie
        # where nobody reaps it, and pulseaudio would then refuse to start: "Daemon already running")
        for stale in (self.directory / "pid", self.socket):
            stale.unlink(missing_ok=True)
        env = dict(os.environ, **self.env(), XDG_RUNTIME_DIR=str(self.directory), HOME=str(self.directory))
        cmd = self.command()
        self.tried.append(" ".join(repr(c) if " " in c else c for c in cmd))
        log = self.directory / "pulseaudio.log"
        try:
            with open(log, "w") as err_file:
                if self.daemonize:
                    code = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_file,
                                          timeout=timeout_s).returncode
                else:
                    self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_file,
                                                    start_new_session=True)
                    code = None
        except (OSError, subprocess.TimeoutExpired) as err:
            raise VirtualDeviceError(f"tried: {self.tried[-1]}\nfailed: {err}") from None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.running():
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                break
            time.sleep(0.05)
        if not self.running():
            if self.process is not None:
                self.process.kill()
                code = self.process.wait()
                self.process = None
            stderr = log.read_text(errors="replace").strip()[-2000:] if log.exists() else ""
            raise VirtualDeviceError(f"tried: {self.tried[-1]} (as uid {os.getuid()})\nexit code {code}"
                                     f"\nstderr: {stderr}\nthe socket {self.socket} never answered `pactl info`")
        self.started_by_us = True
        self._set_defaults()
        return self

    def _set_defaults(self) -> None:
        self._pactl("set-default-sink", self.sink)
        self._pactl("set-default-source", f"{self.sink}.monitor")

    def pid(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        for candidate in (self.directory / "pid", self.directory / "pulse" / "pid"):
            try:
                return int(candidate.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return None

    def kill(self) -> None:
        """Kill the daemon abruptly (simulates a device that disappears)."""
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            self.process.wait(timeout=5.0)
            self.process = None
        deadline = time.monotonic() + 5.0
        while self.socket.exists() and self.running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the daemon if this object started it (``pulseaudio --kill`` against our socket, then SIGTERM)."""
        if not self.started_by_us:
            return
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            self.started_by_us = False
            return
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        self.started_by_us = False
