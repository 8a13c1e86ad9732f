"""The approximate-time pairing the lifter uses: nearest partner within the slop, settled once it cannot improve,
leading items without a partner reported."""

from av_pose_ros.primitives.pairing import NearestPairer

MS = 1_000_000


def test_pairs_nearest_within_slop_once_settled():
    p = NearestPairer(slop_ns=30 * MS)
    p.add_leading(100 * MS, "kp100")
    p.add_following(90 * MS, "k90")
    assert p.pop_ready() == ([], [])  # a nearer kernel may still come
    p.add_following(104 * MS, "k104")
    pairs, unmatched = p.pop_ready()
    assert [(a.item, b.item) for a, b in pairs] == [("kp100", "k104")] and not unmatched


def test_unmatched_when_audio_is_missing_or_too_far():
    p = NearestPairer(slop_ns=30 * MS, max_wait_ns=60 * MS)
    p.add_leading(100 * MS, "kp100")
    p.add_leading(200 * MS, "kp200")
    pairs, unmatched = p.pop_ready()
    assert not pairs and [u.item for u in unmatched] == ["kp100"]  # waited long enough; kp200 still waiting
    p.add_following(260 * MS, "k260")  # 60 ms away: beyond the slop
    pairs, unmatched = p.pop_ready()
    assert not pairs and [u.item for u in unmatched] == ["kp200"]


def test_out_of_order_streams_and_old_partners_expire():
    p = NearestPairer(slop_ns=20 * MS)
    for t in (0, 100, 200):
        p.add_following(t * MS, f"k{t}")
    p.add_leading(195 * MS, "kp195")
    p.add_leading(105 * MS, "kp105")  # arrives late
    pairs, _ = p.pop_ready()
    assert [(a.item, b.item) for a, b in pairs] == [("kp195", "k200"), ("kp105", "k100")]
    assert all(f.stamp_ns >= 0 for f in p.following) and len(p.following) <= 3
