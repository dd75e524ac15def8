"""Input collection (directory, list files) and one recipe per corpus on tiny fake trees."""
from __future__ import annotations

from pathlib import Path

import pytest

from prep.inputs import collect_inputs, read_list_file, scan_directory
from prep.recipes import RECIPES, get_recipe


def touch(root: Path, *rels: str) -> None:
    for r in rels:
        p = root / r
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_directory_scan_is_recursive_sorted_and_clip_ids_are_relative(tmp_path):
    touch(tmp_path, "b/2.MP4", "a/1.mp4", "a/deep/3.webm", "a/notes.txt", "ü/ñ.mkv")
    items = scan_directory(tmp_path)
    assert [i.clip_id for i in items] == ["a/1", "a/deep/3", "b/2", "ü/ñ"]
    assert all(Path(i.source_path).is_absolute() or Path(i.source_path).exists() for i in items)


def test_symlinked_videos_keep_their_name_under_the_root(tmp_path):
    touch(tmp_path, "store/real_name.mp4")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "link.mp4").symlink_to(tmp_path / "store" / "real_name.mp4")
    assert [i.clip_id for i in scan_directory(tmp_path / "in")] == ["link"]


def test_csv_and_txt_lists(tmp_path):
    touch(tmp_path, "v/a.mp4", "v/b.mp4")
    (tmp_path / "list.csv").write_text("path,split,speaker\nv/a.mp4,train,s1\nv/b.mp4,test,s2\n")
    items = read_list_file(tmp_path / "list.csv")  # ids relative to the deepest folder holding every file
    assert [(i.clip_id, i.split, i.speaker) for i in items] == [("a", "train", "s1"), ("b", "test", "s2")]
    (tmp_path / "list.txt").write_text("# comment\nv/b.mp4\n\nv/a.mp4\n")
    assert [i.clip_id for i in collect_inputs(tmp_path / "list.txt")] == ["b", "a"]
    assert [i.clip_id for i in collect_inputs(tmp_path / "list.txt", root=tmp_path)] == ["v/b", "v/a"]
    with pytest.raises(ValueError, match="not under the clip-id root"):
        collect_inputs(tmp_path / "list.txt", root=tmp_path / "elsewhere")
    (tmp_path / "bad.csv").write_text("file\nx.mp4\n")
    with pytest.raises(ValueError, match="'path' column"):
        read_list_file(tmp_path / "bad.csv")


def test_lrs2(tmp_path):
    touch(tmp_path, "main/5535415699068794046/00001.mp4", "main/5535415699068794046/00002.mp4",
          "main/6330311066473698535/00011.mp4", "pretrain/5535415699068794046/00099.mp4")
    (tmp_path / "test.txt").write_text("6330311066473698535/00011 NF\n")
    (tmp_path / "val.txt").write_text("5535415699068794046/00002\n")
    items = get_recipe("lrs2")(tmp_path, output_dir=tmp_path / "out")
    assert [(i.clip_id, i.split) for i in items] == [
        ("main/5535415699068794046/00001", "train"), ("main/5535415699068794046/00002", "val"),
        ("main/6330311066473698535/00011", "test")]
    assert (tmp_path / "out" / "lrs2_inputs.csv").exists()
    again = collect_inputs(tmp_path / "out" / "lrs2_inputs.csv")
    assert [i.source_path for i in again] == [i.source_path for i in items]
    assert len(get_recipe("lrs2")(tmp_path, include_pretrain=True)) == 4


def test_lrs3(tmp_path):
    touch(tmp_path, "trainval/0af00UcTOSc/50001.mp4", "test/0Fi83BHQsMA/00002.mp4", "pretrain/x/1.mp4")
    items = get_recipe("lrs3")(tmp_path)
    assert [(i.clip_id, i.split, i.speaker) for i in items] == [
        ("test/0Fi83BHQsMA/00002", "test", "0Fi83BHQsMA"), ("trainval/0af00UcTOSc/50001", "train", "0af00UcTOSc")]


def test_voxceleb2(tmp_path):
    touch(tmp_path, "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4", "test/mp4/id00017/01dfn2spqyE/00001.mp4")
    items = get_recipe("voxceleb2")(tmp_path)
    assert [(i.split, i.speaker) for i in items] == [("train", "id00012"), ("test", "id00017")]


def test_hdtf_split_is_by_speaker_and_stable(tmp_path):
    touch(tmp_path, "RD_Radio1_000.mp4", "WDA_BarackObama_000.mp4", "WDA_BarackObama_001.mp4", "WRA_Jane_Doe_000.mp4")
    items = get_recipe("hdtf")(tmp_path)
    by = {i.clip_id: i for i in items}
    assert by["WDA_BarackObama_000"].speaker == by["WDA_BarackObama_001"].speaker == "BarackObama"
    assert by["WDA_BarackObama_000"].split == by["WDA_BarackObama_001"].split
    assert by["WRA_Jane_Doe_000"].speaker == "Jane_Doe"
    assert [i.split for i in get_recipe("hdtf")(tmp_path)] == [i.split for i in items]


def test_lrw(tmp_path):
    touch(tmp_path, "lipread_mp4/ABOUT/train/ABOUT_00001.mp4", "lipread_mp4/ABOUT/test/ABOUT_00001.mp4",
          "lipread_mp4/ABOUT/val/ABOUT_00002.mp4")
    items = get_recipe("lrw")(tmp_path)
    assert sorted(i.split for i in items) == ["test", "train", "val"]
    assert all(i.clip_id.startswith("lipread_mp4/ABOUT/") for i in items)


def test_unknown_recipe_and_missing_corpus(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("timit")
    for name in RECIPES:
        with pytest.raises(FileNotFoundError):
            get_recipe(name)(tmp_path / "nope")
