"""The upload load profile: uploaders at a steady rate, judged against seed 001's 10 MB in < 5 s."""

from __future__ import annotations

from msgops.load.profile import load_profile


def test_upload_profile_is_uploaders_only_with_the_seed_target() -> None:
    profile = load_profile("seed-001-uploads")
    assert profile.users.uploader == 4 and profile.users.total == 4 and profile.pacing.uploader == 2.0
    thresholds = {(t.metric, t.op, t.value) for t in profile.thresholds}
    assert ("http.p95_ms", "<", 5000) in thresholds

