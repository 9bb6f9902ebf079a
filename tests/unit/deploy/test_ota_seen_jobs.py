"""The OTA agent remembers the newest job ids it ran, whatever their spelling."""

import uuid

from edge_os.deploy.ota import remember


def test_the_newest_ids_are_kept_not_the_largest():
    seen: list[str] = []
    ids = [uuid.uuid4().hex for _ in range(150)]
    for job_id in ids:
        seen = remember(seen, job_id, limit=100)
    assert seen == ids[-100:]


def test_a_repeated_id_moves_to_the_newest_place_once():
    seen = remember(remember(remember([], "b"), "a"), "b")
    assert seen == ["a", "b"]
