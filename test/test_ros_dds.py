"""The Fast DDS profile for whole camera images: used unless the user configured DDS, and sized for them. (Its
effect is seen in test_vision_node: a 786 KB best-effort image topic gave its first keypoints after 31-122 s on a
loaded machine with Fast DDS's defaults, 14 s with the profile.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from av_pose_ros.ros.dds import PROFILE, use_large_data_profile

from conftest import REPO

NS = {"f": "http://www.eprosima.com"}


def test_profile_is_used_only_when_the_user_set_none():
    env: dict[str, str] = {}
    assert use_large_data_profile(env) and env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(REPO / PROFILE)
    for user in ({"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"}, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/x.xml"},
                 {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}):
        env = dict(user)
        assert not use_large_data_profile(env) and env == user


def test_profile_holds_a_whole_image_in_the_default_transports():
    root = ET.parse(REPO / PROFILE).getroot()
    descriptors = root.iter(f"{{{NS['f']}}}transport_descriptor")
    transports = {t.findtext("f:transport_id", namespaces=NS): t for t in descriptors}
    kinds = {t.findtext("f:type", namespaces=NS) for t in transports.values()}
    assert kinds == {"SHM", "UDPv4"}   # the default set: discovery across hosts is unchanged
    image = 1280 * 720 * 3
    shm = next(t for t in transports.values() if t.findtext("f:type", namespaces=NS) == "SHM")
    assert int(shm.findtext("f:segment_size", namespaces=NS)) >= 2 * image
    participant = root.find("f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iter(f"{{{NS['f']}}}transport_id")]
    assert set(used) == set(transports)
