"""ray_gan.data.sources: listing a source folder's images and their styles."""

from ray_gan.data.sources import list_source


def test_list_source_styles_from_subfolders_and_flat(tmp_path):
    (tmp_path / "src" / "ink").mkdir(parents=True)
    (tmp_path / "src" / "ink" / "a.png").write_bytes(b"x")
    (tmp_path / "src" / ".hidden").write_bytes(b"x")
    (tmp_path / "src" / "top.png").write_bytes(b"x")
    items = list_source(str(tmp_path / "src"))
    assert [(i.key, i.style) for i in items] == [("ink/a.png", "ink"), ("top.png", "src")]
