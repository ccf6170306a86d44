"""ray_gan.data.prepare: the train/val split."""

from ray_gan.data.prepare import split_of


def test_split_is_deterministic_per_content_and_close_to_the_fraction():
    shas = [f"{i:064x}" for i in range(4000)]
    a = [split_of(s, 0, 0.1) for s in shas]
    assert a == [split_of(s, 0, 0.1) for s in shas]
    share = a.count("val") / len(a)
    assert 0.08 < share < 0.12
    b = [split_of(s, 1, 0.1) for s in shas]
    assert a != b  # the seed matters
    assert all(split_of(s, 0, 0.0) == "train" for s in shas[:50])
