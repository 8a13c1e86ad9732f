#!/usr/bin/env python3
"""Set up everything av_pose_ros needs, from nothing, into `.venv/` in the repository root.

Run by `make setup` (and so by `make test` and `make demo`). Each step keeps a stamp keyed on a hash of its inputs,
so a second run with nothing changed finishes in about a second. Steps:

1. Debian packages the Python wheels need at run time (PortAudio, libusb, PulseAudio, espeak-ng), when missing.
2. The virtual environment with pinned Python packages. Where a ROS 2 installation is sourced (rclpy importable by
   the system interpreter, as on a robot) the environment sees the system site packages and uses that ROS;
   otherwise real ROS 2 (rclpy, Fast DDS, messages, rosidl) comes from the Python package registry.
3. Registry mode only: the registry's ament/rosidl CMake files name the build machine's Python and numpy include
   directories; they are rewritten to this interpreter's.
4. `tf2_msgs` (TFMessage only) is built from `third_party/tf2_msgs` when the real package is not importable.
5. This package's `msg/` is built with the same CMakeLists.txt that `colcon build` uses, installed into the
   environment's prefix so `from av_pose_ros.msg import ...` works with nothing sourced.
6. An editable install of the Python package (console scripts `av-pose` and one per node).
7. As root only: the Debian packages the music library is made from (fluidsynth, the GM soundfont, game music;
   `MUSIC_APT_PACKAGES`); without root, or if they cannot be installed, setup says so and goes on (only
   `av-pose music-library build` needs them). The library itself is not built here: it takes several minutes
   (`av-pose music-library build`); whatever needs it says so.

Standard library only: it runs before the environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APT_PACKAGES = ["libportaudio2", "libusb-1.0-0", "libgl1", "libegl1", "libgomp1", "espeak-ng", "pulseaudio",
                "libasound2-plugins", "alsa-utils",
                "libmysofa1"]  # its MIT KEMAR HRIR set: the measured head SLfM is evaluated on (slfm/heads.py)
# BGM-mode music library (av_pose_ros/audio/music_library.py): renderer, GM soundfont, recorded and MIDI game music.
MUSIC_APT_PACKAGES = ["fluidsynth", "fluid-soundfont-gm", "drascula-music", "asc-music", "planetblupi-music-midi"]
ROS_PROBE = "import rclpy, std_msgs.msg, sensor_msgs.msg, geometry_msgs.msg, rosidl_generator_py"


class SetupError(RuntimeError):
    """A setup step failed; the message says what and how to fix it."""


def log(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)


def digest(*items) -> str:
    """Hash of strings and file contents (paths are read; directories hash all files below them)."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, Path):
            files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
            for f in files:
                h.update(str(f.relative_to(ROOT)).encode())
                h.update(f.read_bytes() if f.exists() else b"<missing>")
        else:
            h.update(str(item).encode())
    return h.hexdigest()[:16]


def run(cmd: list[str], step: str, hint: str, env: dict | None = None, cwd: Path | None = None) -> None:
    """Run a command with its output in a log file; on failure raise with the log's tail and a hint."""
    log_dir = ROOT / "build" / "setup-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{step}.log"
    with open(log_file, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if rc != 0:
        tail = "".join(log_file.read_text(errors="replace").splitlines(True)[-25:])
        raise SetupError(f"step '{step}' failed (exit {rc}): {' '.join(cmd)}\n--- last lines of {log_file} ---\n"
                         f"{tail}--- how to fix ---\n{hint}")


class Setup:
    def __init__(self, venv: Path, python: str, force: bool):
        self.venv = venv
        self.python = python
        self.force = force
        self.stamps = venv / ".av_pose_setup"
        self.system_ros = self._system_ros_available()

    # -- stamps -------------------------------------------------------------------------------------------------
    def fresh(self, step: str, key: str) -> bool:
        stamp = self.stamps / step
        return not self.force and stamp.exists() and stamp.read_text() == key

    def mark(self, step: str, key: str) -> None:
        self.stamps.mkdir(parents=True, exist_ok=True)
        (self.stamps / step).write_text(key)

    # -- environment facts --------------------------------------------------------------------------------------
    def _system_ros_available(self) -> bool:
        if not os.environ.get("AMENT_PREFIX_PATH"):
            return False
        return subprocess.call([self.python, "-c", ROS_PROBE], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) == 0

    @property
    def vpy(self) -> str:
        return str(self.venv / "bin" / "python")

    def venv_env(self) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env.pop("PYTHONPATH", None)
        return env

    def venv_query(self, code: str) -> str:
        return subprocess.check_output([self.vpy, "-c", code], env=self.venv_env(), text=True).strip()

    def importable(self, module: str) -> bool:
        return subprocess.call([self.vpy, "-c", f"import {module}"], env=self.venv_env(), cwd="/",
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0

    # -- steps --------------------------------------------------------------------------------------------------
    def apt(self) -> None:
        key = digest(*APT_PACKAGES)
        if self.fresh("apt", key):
            return
        missing = [p for p in APT_PACKAGES if "install ok installed" not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
        if missing:
            if shutil.which("apt-get") is None:
                log(f"warning: cannot install system packages {missing} (no apt-get); install their equivalents")
                return
            if os.geteuid() != 0:
                raise SetupError(f"system packages missing: {' '.join(missing)}\n--- how to fix ---\n"
                                 f"sudo apt-get install -y {' '.join(missing)}   (then run make setup again)")
            log(f"installing Debian packages: {' '.join(missing)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            run(["apt-get", "update", "-q"], "apt", "check the network access to the Debian mirror", env=env)
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], "apt",
                f"install them by hand: apt-get install -y {' '.join(missing)}", env=env)
        self.mark("apt", key)

    def music_apt(self) -> None:
        """The music library's Debian packages, when missing and running as root; never fatal."""
        key = digest(*MUSIC_APT_PACKAGES)
        if self.fresh("music_apt", key):
            return
        missing = [p for p in MUSIC_APT_PACKAGES if "install ok installed" not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
        if missing and (shutil.which("apt-get") is None or os.geteuid() != 0):
            log(f"skipping the music library's Debian packages (not root or no apt-get): {' '.join(missing)}; "
                f"`av-pose music-library build` needs them: sudo apt-get install -y {' '.join(missing)}")
            return
        if missing:
            log(f"installing the music library's Debian packages (about 160 MB): {' '.join(missing)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            try:
                run(["apt-get", "update", "-q"], "apt-music", "check the network access to the Debian mirror", env=env)
                run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], "apt-music",
                    f"install them by hand: apt-get install -y {' '.join(missing)}", env=env)
            except SetupError as err:
                log(f"warning: music library packages not installed (only `av-pose music-library build` needs "
                    f"them): {str(err).splitlines()[0]}")
                return
        self.mark("music_apt", key)

    def venv_and_packages(self) -> None:
        reqs = [ROOT / "requirements.txt"] + ([] if self.system_ros else [ROOT / "requirements-ros.txt"])
        key = digest(self.python, sys.version, self.system_ros, *reqs)
        if self.fresh("packages", key) and (self.venv / "bin" / "python").exists():
            return
        if not (self.venv / "bin" / "python").exists():
            log(f"creating {self.venv} ({'with the sourced ROS 2' if self.system_ros else 'ROS 2 from PyPI'})")
            cmd = [self.python, "-m", "venv", str(self.venv)]
            if self.system_ros:
                cmd.append("--system-site-packages")
            run(cmd, "venv", "install the venv module (Debian: apt-get install python3-venv)")
        log("installing pinned Python packages (first time: several minutes)")
        run([self.vpy, "-m", "pip", "install", "-q", "--upgrade", "pip", "setuptools", "wheel"], "pip",
            "check access to the Python package registry", env=self.venv_env())
        args = [a for r in reqs for a in ("-r", str(r))]
        run([self.vpy, "-m", "pip", "install", "-q", *args], "pip",
            "check access to the Python package registry and that this Python version (3.10-3.14, x86_64) has "
            "wheels for every pin in requirements*.txt; torch==2.13.0 CPU may also come from a local wheel "
            "directory (pip --find-links)", env=self.venv_env())
        if not self.system_ros:
            self.rewrite_cmake_paths()
        self.mark("packages", key)

    def rewrite_cmake_paths(self) -> None:
        """Point the registry wheels' exported CMake files at this interpreter's include directories."""
        py_inc = self.venv_query("import sysconfig; print(sysconfig.get_paths()['include'])")
        np_inc = self.venv_query("import numpy; print(numpy.get_include())")
        rewritten = 0
        for cmake in (self.venv / "share").rglob("*.cmake"):
            text = cmake.read_text(errors="replace")
            if "/opt/python/" not in text:
                continue
            new = re.sub(r"/opt/python/[^/\";]+/include/python3\.\d+", py_inc, text)
            new = re.sub(r"/opt/python/[^/\";]+/lib/python3\.\d+/site-packages/numpy/(_core|core)/include",
                         np_inc, new)
            if new != text:
                cmake.write_text(new)
                rewritten += 1
        log(f"rewrote Python/numpy include paths in {rewritten} CMake files")

    def cmake_build(self, source: Path, name: str, extra: list[str]) -> None:
        build = ROOT / "build" / name
        if build.exists():
            shutil.rmtree(build)
        build.mkdir(parents=True)
        prefixes = [str(self.venv)] + os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
        cmake = shutil.which("cmake")
        if cmake is None:
            raise SetupError("cmake not found\n--- how to fix ---\napt-get install -y cmake g++ make")
        env = self.venv_env()
        run([cmake, str(source), f"-DCMAKE_INSTALL_PREFIX={self.venv}",
             f"-DCMAKE_PREFIX_PATH={';'.join(p for p in prefixes if p)}", f"-DPython3_EXECUTABLE={self.vpy}",
             f"-DCMAKE_INSTALL_RPATH={self.venv / 'lib'}", "-DBUILD_TESTING=OFF", *extra],
            f"cmake-{name}", "cmake and a C/C++ compiler are needed (apt-get install -y cmake g++ make); if the "
            "error names /opt/python paths, delete .venv and run make setup again", env=env, cwd=build)
        run([cmake, "--build", ".", "--target", "install", "--", f"-j{os.cpu_count() or 2}"], f"build-{name}",
            "read the compiler error above; the .msg files must follow the ROS 2 interface syntax", env=env,
            cwd=build)

    def tf2_msgs(self) -> None:
        source = ROOT / "third_party" / "tf2_msgs"
        key = digest(source, self.vpy)
        if self.fresh("tf2_msgs", key):
            return
        if self.importable("tf2_msgs.msg") and not (self.stamps / "tf2_msgs").exists():
            log("tf2_msgs: using the installed package")
        else:
            log("building tf2_msgs (TFMessage) into the environment")
            self.cmake_build(source, "tf2_msgs", [])
        self.mark("tf2_msgs", key)

    def messages(self) -> None:
        key = digest(ROOT / "msg", ROOT / "CMakeLists.txt", ROOT / "package.xml", self.vpy)
        if self.fresh("msgs", key):
            return
        log("building av_pose_ros messages (rosidl) into the environment")
        self.cmake_build(ROOT, "av_pose_ros", ["-DAV_POSE_INSTALL_PYTHON=OFF"])
        # rosidl installs an empty av_pose_ros/__init__.py beside the generated msg/; without it the directory
        # is a namespace portion that the source package's extend_path adds, so the source package wins.
        # Its egg-info would make pip treat the generated files as an older av_pose_ros and delete them.
        site = Path(self.venv_query("import sysconfig; print(sysconfig.get_paths()['purelib'])"))
        (site / "av_pose_ros" / "__init__.py").unlink(missing_ok=True)
        for egg_info in site.glob("av_pose_ros-*.egg-info"):
            shutil.rmtree(egg_info)
        self.mark("msgs", key)

    def editable(self) -> None:
        nodes = sorted(p.name for p in (ROOT / "av_pose_ros" / "nodes").glob("*_node.py"))
        key = digest(ROOT / "setup.py", *nodes, self.vpy)
        if self.fresh("editable", key):
            return
        log("installing av_pose_ros (editable)")
        run([self.vpy, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT),
             "--config-settings", "editable_mode=compat"], "editable",
            "setup.py failed; read the log above", env=self.venv_env())
        self.mark("editable", key)

    def check(self) -> None:
        probe = "import rclpy, av_pose_ros; from av_pose_ros.msg import HumanPose3D, AudioFrame; import tf2_msgs.msg"
        if subprocess.call([self.vpy, "-c", probe], env=self.venv_env(), cwd="/") != 0:
            raise SetupError(f"the environment does not import the package and its messages: {probe}\n"
                             "--- how to fix ---\nrun `make setup FORCE=1` to redo every step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", default=str(ROOT / ".venv"), help="environment directory (default: .venv)")
    parser.add_argument("--python", default=os.environ.get("AV_POSE_PYTHON", sys.executable),
                        help="interpreter to build the environment from (default: this one)")
    parser.add_argument("--force", action="store_true", help="redo every step, ignoring stamps")
    args = parser.parse_args(argv)
    if not (3, 10) <= sys.version_info[:2] <= (3, 14):
        log(f"Python {sys.version.split()[0]} is outside 3.10-3.14; set PYTHON=python3.11 for make")
        return 1
    setup = Setup(Path(args.venv), args.python, args.force)
    try:
        setup.apt()
        setup.venv_and_packages()
        setup.tf2_msgs()
        setup.messages()
        setup.editable()
        setup.music_apt()
        if setup.force or not (setup.stamps / "checked").exists():
            setup.check()
            setup.mark("checked", "ok")
    except SetupError as err:
        print(f"\n[setup] FAILED: {err}", file=sys.stderr)
        return 1
    log("environment ready: .venv (" + ("sourced ROS 2" if setup.system_ros else "ROS 2 from PyPI") + ")")
    music = Path(os.environ.get("AV_POSE_MUSIC_LIBRARY") or ROOT / "music_library")
    if not (music / "index.json").is_file():
        log(f"music library not built ({music}): `.venv/bin/av-pose music-library build` makes it (several minutes; "
            "needed only by scenarios with audio.music_source: library)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
