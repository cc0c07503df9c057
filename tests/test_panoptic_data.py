"""Panoptic datasets (``ovnb.data.panoptic``): the ADE20K conversion, Cityscapes' segment rules, the
COCO-format reader, and their preparation from archives packed as the hosts ship them."""

import json
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ovnb.data import fixtures
from ovnb.data import panoptic as P
from ovnb.data import prepare

from test_data_prepare import server  # noqa: F401  (the local file server fixture)


def test_segment_ids_round_trip_through_rgb():
    ids = np.array([[0, 1, 255], [256, 65535, 65536 + 7]])
    rgb = P.id_to_rgb(ids)
    assert rgb[1, 0].tolist() == [0, 1, 0] and rgb[1, 2].tolist() == [7, 0, 1]
    assert (P.rgb_to_id(rgb) == ids).all()


def test_ade20k_conversion_by_hand():
    """Stuff from the semantic map (thing classes' semantic pixels unused), things from the instance map
    (R = instance category, G = instance id) painted over the stuff, classes through the mapping table:
    instance category 4 is SceneParsing class 13 (person), 1 is class 8 (bed)."""
    semantic = np.array([[1, 1, 13, 13],
                         [1, 1, 13, 13],
                         [3, 3, 3, 0],
                         [3, 3, 3, 0]], np.uint8)  # wall, person, sky, other
    instance = np.zeros((4, 4, 3), np.uint8)
    instance[0, 2:] = (4, 1, 0)  # one person: the top row of the person pixels
    instance[2:, 0] = (1, 2, 0)  # a bed painted over the sky's first column
    pan, segments = P.convert_ade20k(semantic, instance)
    by_id = {s["id"]: s for s in segments}
    assert sorted((s["category_id"], s["area"]) for s in segments) == [(0, 4), (2, 6), (7, 2), (12, 2)]
    cls = np.vectorize(lambda v: by_id[v]["category_id"] if v else -1)(pan)
    assert cls.tolist() == [[0, 0, 12, 12], [0, 0, -1, -1], [7, 2, 2, -1], [7, 2, 2, -1]]
    sky = next(s for s in segments if s["category_id"] == 2)
    assert (pan == sky["id"]).sum() == 4  # listed with its area before the bed was painted over it


def test_ade20k_categories_have_the_hundred_instance_classes_as_things():
    cats = P.ade20k_categories([f"c{i}" for i in range(150)])
    assert sum(c["isthing"] for c in cats) == 100
    assert cats[12]["isthing"] and cats[7]["isthing"] and not cats[0]["isthing"] and not cats[2]["isthing"]


def test_cityscapes_segments_follow_create_panoptic_imgs():
    """>= 1000: label * 1000 + instance; < 1000: a label id, a crowd when the label has instances (car 26,
    person 24), not for stuff (road 7); labels outside the evaluated 19 (5 dynamic, 0 unlabeled, 29 caravan) dropped."""
    ids = np.array([[7, 26000, 26001, 26], [24, 5, 0, 29000]])
    got = {s["id"]: (s["category_id"], s["iscrowd"]) for s in P.cityscapes_segments(ids)}
    assert got == {7: (7, 0), 26000: (26, 0), 26001: (26, 0), 26: (26, 1), 24: (24, 1)}
    cats = P.cityscapes_categories()
    assert len(cats.ids) == 19 and sum(cats.thing) == 8 and cats.names[cats.ids.index(26)] == "car"


def test_coco_format_samples_against_the_files(tmp_path):
    """Each sample's semantic mask, instance map and segments equal what the PNG and the json say, read
    here independently: every segment's pixels carry its class (crowds too), each non-crowd thing segment
    is its own instance, crowds and stuff have none, void stays 255."""
    fixtures.coco_panoptic(tmp_path)
    ds = P.coco_panoptic(tmp_path, "val2017")
    data = json.loads((tmp_path / "coco" / "annotations" / "panoptic_val2017.json").read_text())
    cats = sorted(c["id"] for c in data["categories"])
    things = {c["id"] for c in data["categories"] if c["isthing"]}
    assert len(ds) == len(data["annotations"]) == 34 and len(ds.class_names) == 133
    crowds = 0
    for index in (0, 1, 3):
        ann = data["annotations"][index]
        sample = ds[ds.keys.index(ann["file_name"][:-4])]
        rgb = np.asarray(Image.open(tmp_path / "coco" / "panoptic_val2017" / ann["file_name"])).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        assert (sample["mask"][torch.from_numpy(ids == 0)] == 255).all()
        seen_instances = set()
        for seg in ann["segments_info"]:
            region = torch.from_numpy(ids == seg["id"])
            assert (sample["mask"][region] == cats.index(seg["category_id"])).all()
            inst = sample["instances"][region].unique().tolist()
            if seg["category_id"] in things and not seg["iscrowd"]:
                assert len(inst) == 1 and inst[0] > 0 and inst[0] not in seen_instances
                seen_instances.add(inst[0])
            else:
                assert inst == [0]
            crowds += seg["iscrowd"]
    assert crowds >= 1


def test_fixture_panoptic_datasets_load(tmp_path):
    for family in ("cityscapes-19", "ade20k-panoptic", "mapillary-vistas"):
        fixtures.FAMILIES[family](tmp_path)
    city = P.cityscapes_panoptic(tmp_path)
    crowd = [s for i in range(len(city)) for s in city[i]["segments_info"] if s["iscrowd"]]
    assert len(city) == 6 and crowd and all(city.thing[s["category_id"]] for s in crowd)
    ade = P.ade20k_panoptic(tmp_path)
    assert len(ade) == 50 and {s["category_id"] for i in range(len(ade)) for s in ade[i]["segments_info"]} == set(range(150))
    vistas = P.mapillary_vistas(tmp_path)
    assert len(vistas) == 13 and len(vistas.class_names) == 65


def _same(a, b):
    assert a.keys == b.keys and len(a) > 0
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
        assert torch.equal(x["instances"], y["instances"]) and x["segments_info"] == y["segments_info"]


def test_prepare_coco_panoptic_from_archives_of_the_fixture_layout(server, tmp_path):  # noqa: F811
    """panoptic_annotations_trainval2017.zip as COCO ships it (two json files and two inner zips of PNGs
    under annotations/) and the image zips come out where the loader reads them."""
    www, url = server
    src = tmp_path / "src"
    fixtures.coco_panoptic(src)
    coco = src / "coco"
    with zipfile.ZipFile(www / "pan.zip", "w") as z:
        for s in ("train2017", "val2017"):
            z.write(coco / "annotations" / f"panoptic_{s}.json", f"annotations/panoptic_{s}.json")
            inner = tmp_path / f"panoptic_{s}.zip"
            with zipfile.ZipFile(inner, "w") as zi:
                for p in sorted((coco / f"panoptic_{s}").iterdir()):
                    zi.write(p, f"panoptic_{s}/{p.name}")
            z.write(inner, f"annotations/panoptic_{s}.zip")
            with zipfile.ZipFile(www / f"{s}.zip", "w") as zi:
                for p in sorted((coco / s).iterdir()):
                    zi.write(p, f"{s}/{p.name}")
    data = tmp_path / "data"
    prepare.module("coco-panoptic-2017").prepare(data, {
        "panoptic": (f"{url}/pan.zip", "pan.zip", None), "train2017": (f"{url}/train2017.zip", "train2017.zip", None),
        "val2017": (f"{url}/val2017.zip", "val2017.zip", None)})
    for s in ("train2017", "val2017"):
        _same(P.coco_panoptic(data, s), P.coco_panoptic(src, s))


def test_prepare_ade20k_panoptic_downloads_instances_and_converts(server, tmp_path):  # noqa: F811
    """annotations_instance.tar (as MIT ships it) beside a prepared ADE20K-150: the conversion writes what
    the fixture's conversion wrote."""
    import shutil

    www, url = server
    src = tmp_path / "src"
    fixtures.ade20k_panoptic(src)
    with tarfile.open(www / "inst.tar", "w") as t:
        t.add(src / "ADEChallengeData2016" / "annotations_instance", arcname="annotations_instance")
    data = tmp_path / "data"
    fixtures.ade20k(data)
    prepare.module("ade20k-panoptic").prepare(data, {"instances": (f"{url}/inst.tar", "inst.tar", None)}, progress=False)
    for s in ("training", "validation"):
        _same(P.ade20k_panoptic(data, s), P.ade20k_panoptic(src, s))
    shutil.rmtree(src)


def test_prepare_mapillary_from_the_archive_the_user_downloaded(tmp_path):
    src = tmp_path / "src"
    fixtures.mapillary_vistas(src)
    data = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match="mapillary.com"):
        prepare.module("mapillary-vistas").prepare(data)
    (data / "downloads").mkdir(parents=True)
    with zipfile.ZipFile(data / "downloads" / "mapillary-vistas-dataset_public_v1.2.zip", "w") as z:
        for p in sorted((src / "mapillary_vistas").rglob("*")):
            if p.is_file():
                z.write(p, str(p.relative_to(src / "mapillary_vistas")))
    prepare.module("mapillary-vistas").prepare(data)
    _same(P.mapillary_vistas(data), P.mapillary_vistas(src))


def test_missing_panoptic_data_names_the_preparation(tmp_path):
    from ovnb.data.files import DatasetMissingError

    for load, name in ((P.coco_panoptic, "coco-panoptic-2017"), (P.ade20k_panoptic, "ade20k-panoptic"),
                       (P.mapillary_vistas, "mapillary-vistas"), (P.cityscapes_panoptic, "cityscapes-19")):
        with pytest.raises(DatasetMissingError, match=f"ovnb data prepare {name}") as info:
            load(tmp_path)
        assert info.value.datasets == (name,)
    with pytest.raises(ValueError, match="image_set must be"):
        P.coco_panoptic(tmp_path, "test2017")
