"""Dataset preparation (``ovnb.data.prepare``) on fixture archives served locally: resume, checksums,
safe extraction, layout; from the command line outside the checkout, and in the built wheel."""

import hashlib
import http.server
import io
import pickle
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovnb.data import prepare
from ovnb.data.prepare import download as common

ROOT = Path(__file__).resolve().parent.parent


def load(name):
    return prepare.module(name)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support; ``cut`` truncates the first response of a file."""

    cut: dict = {}
    ranges_seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        header = self.headers.get("Range")
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.ranges_seen.append(start)
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = self.cut.pop(self.path, None)
        self.wfile.write(body if limit is None else body[:limit])


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_resumes_and_verifies(server, tmp_path):
    root, url = server
    payload = bytes(range(256)) * 4000
    (root / "file.bin").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    RangeHandler.cut["/file.bin"] = 100_000
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(Exception):
        common.download(f"{url}/file.bin", dest, digest)
    assert (tmp_path / "dl" / "file.bin.part").stat().st_size == 100_000
    common.download(f"{url}/file.bin", dest, digest)
    assert dest.read_bytes() == payload and 100_000 in RangeHandler.ranges_seen
    with pytest.raises(common.ChecksumError, match="does not match"):
        common.download(f"{url}/file.bin", tmp_path / "dl" / "other.bin", "0" * 64)
    assert not (tmp_path / "dl" / "other.bin.part").exists()


def test_without_a_published_checksum_the_first_digest_is_kept(server, tmp_path):
    root, url = server
    (root / "a.zip").write_bytes(b"first version")
    dest = tmp_path / "a.zip"
    common.download(f"{url}/a.zip", dest)
    stored = (tmp_path / "a.zip.sha256").read_text().split()[0]
    assert stored == hashlib.sha256(b"first version").hexdigest()
    dest.write_bytes(b"corrupted")  # a later run notices and fetches again
    common.download(f"{url}/a.zip", dest)
    assert dest.read_bytes() == b"first version"


def _zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_extraction_refuses_path_escapes(tmp_path):
    bad = tmp_path / "bad.zip"
    _zip(bad, {"ok.txt": b"x", "../escape.txt": b"y"})
    with pytest.raises(common.UnsafeArchiveError, match="outside"):
        common.extract(bad, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()
    tar_path = tmp_path / "bad.tar"
    with tarfile.open(tar_path, "w") as t:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        t.addfile(info)
    with pytest.raises(common.UnsafeArchiveError):
        common.extract(tar_path, tmp_path / "out2")
    absolute = tmp_path / "abs.zip"
    _zip(absolute, {"/etc/x": b"x"})
    with pytest.raises(common.UnsafeArchiveError):
        common.extract(absolute, tmp_path / "out3")


def _image_bytes(array, fmt):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def test_voc_script_prepares_the_layout_the_loader_reads(server, tmp_path):
    from ovnb.data import fewshot

    root, url = server
    voc_tar = root / "voc.tar"
    with tarfile.open(voc_tar, "w") as t:
        for name, data in {"VOCdevkit/VOC2012/JPEGImages/2007_000001.jpg": _image_bytes(np.zeros((8, 8, 3), np.uint8), "JPEG"),
                           "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt": b"2007_000001\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 3
    _zip(root / "aug.zip", {"SegmentationClassAug/2007_000001.png": _image_bytes(mask, "PNG")})
    voc = load("voc2012")
    data = tmp_path / "data"
    voc.prepare(data, {"voc": (f"{url}/voc.tar", "voc.tar", None), "sbd_aug": (f"{url}/aug.zip", "aug.zip", None)})
    for split in ("trn", "val"):
        for fold in range(4):
            p = data / "splits" / "pascal" / split / f"fold{fold}.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("2007_000001__3\n" if (split, fold) == ("val", 0) else "")
    eps = fewshot.pascal_episodes(data, 0, "val")
    assert int(eps[0]["mask"].sum()) == 9 and eps[0]["class_name"] == "bird"
    voc.prepare(data, {})  # prepared already: nothing to download


def test_fss_script_and_split_counts(server, tmp_path):
    root, url = server
    members = {}
    for k in range(3):
        for n in range(1, 11):
            members[f"FSS-1000/c{k}/{n}.jpg"] = _image_bytes(np.zeros((8, 8, 3), np.uint8), "JPEG")
            members[f"FSS-1000/c{k}/{n}.png"] = _image_bytes(np.full((8, 8), 255, np.uint8), "PNG")
    _zip(root / "fss.zip", members)
    fss = load("fss1000")
    data = tmp_path / "data"
    fss.prepare(data, {"fss": (f"{url}/fss.zip", "fss.zip", None)})
    assert len(list((data / "FSS-1000").iterdir())) == 3

    splits = load("fewshot-splits")
    base = root / "splits"
    for rel in splits.files():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".pkl"):
            p.write_bytes(pickle.dumps({0: ["x.jpg"]}))
        else:
            p.write_text("a__1\n")
    with pytest.raises(RuntimeError, match=r"(?s)fold0.txt: 1 lines, expected 2884.*fold0.pkl: 1 pairs"):
        splits.prepare(data, {"hsnet": f"{url}/splits"})


def test_prepare_runs_from_outside_the_checkout_with_a_mirror_source(server, tmp_path):
    """``ovnb data prepare`` as a pip/Colab user runs it: another working directory, a source URL
    given on the command line (here a local server standing in for a mirror)."""
    import subprocess

    root, url = server
    _zip(root / "fss.zip", {f"FSS-1000/c0/{n}.jpg": _image_bytes(np.zeros((8, 8, 3), np.uint8), "JPEG")
                            for n in range(1, 3)})
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "ovnb", "data", "prepare", "fss1000", "--root", "mydata",
                           "--source", f"fss={url}/fss.zip"], cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "downloads HSNet's FSS-1000.zip" in proc.stdout and (work / "mydata" / "FSS-1000" / "c0" / "1.jpg").is_file()
    bad = subprocess.run([sys.executable, "-m", "ovnb", "data", "prepare", "fss1000", "--source", "nokey=x"],
                         cwd=work, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no source 'nokey'" in bad.stderr


def test_the_thin_scripts_call_the_package():
    import subprocess

    for name in ("voc2012", "coco2014", "fss1000", "fewshot_splits", "coco_stuff164k", "ade20k", "cityscapes",
                 "pascal_context", "ade20k_full", "gpt4o_lists", "coco_instances2017", "fcclip_class_lists", "coco_panoptic2017",
                 "ade20k_panoptic", "mapillary_vistas"):
        proc = subprocess.run([sys.executable, str(ROOT / "data_scripts" / f"{name}.py"), "--help"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "--root" in proc.stdout


def test_the_wheel_ships_the_preparation(tmp_path):
    import subprocess

    pytest.importorskip("setuptools")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("ovnb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("__init__", "download", "voc2012", "coco2014", "fss1000", "fewshot_splits", "coco_stuff164k", "ade20k", "cityscapes",
                 "pascal_context", "ade20k_full", "gpt4o_lists", "coco_instances2017", "fcclip_class_lists", "coco_panoptic2017",
                 "ade20k_panoptic", "mapillary_vistas"):
        assert f"ovnb/data/prepare/{module}.py" in names


def test_prepare_voc_from_archives_of_the_fixture_layout(server, tmp_path):
    """The fixture datasets packed as the hosts ship them (VOC's tar, HSNet's SBD zip) come out of
    ``prepare`` exactly as written: the loaders read the same episodes on every fold."""
    import shutil

    from ovnb.data import fewshot, fixtures

    www, url = server
    src = tmp_path / "src"
    fixtures.voc(src)
    with tarfile.open(www / "voc.tar", "w") as t:
        for sub in ("JPEGImages", "ImageSets"):
            t.add(src / "VOCdevkit" / "VOC2012" / sub, arcname=f"VOCdevkit/VOC2012/{sub}")
    with zipfile.ZipFile(www / "aug.zip", "w") as z:
        for p in sorted((src / "VOCdevkit" / "VOC2012" / "SegmentationClassAug").iterdir()):
            z.write(p, f"SegmentationClassAug/{p.name}")
    data = tmp_path / "data"
    load("voc2012").prepare(data, {"voc": (f"{url}/voc.tar", "voc.tar", None),
                                   "sbd_aug": (f"{url}/aug.zip", "aug.zip", None)})
    shutil.copytree(src / "splits", data / "splits")
    for fold in range(4):
        ours, made = fewshot.pascal_episodes(data, fold, "val"), fewshot.pascal_episodes(src, fold, "val")
        assert ours.pairs == made.pairs and len(ours) > 0
        assert all(bool((ours[i]["mask"] == made[i]["mask"]).all()) for i in range(len(ours)))


def test_prepare_coco_stuff_from_archives_of_the_fixture_layout(server, tmp_path):
    """COCO 2017's image zips and COCO-Stuff's stuffthingmaps zip, packed from the fixture as the hosts
    ship them, come out where ``ovnb.data.semseg.coco_stuff`` reads them, unchanged."""
    from ovnb.data import fixtures, semseg

    www, url = server
    src = tmp_path / "src"
    fixtures.coco_stuff(src)
    for image_set in ("train2017", "val2017"):
        with zipfile.ZipFile(www / f"{image_set}.zip", "w") as z:
            for p in sorted((src / "coco" / image_set).iterdir()):
                z.write(p, f"{image_set}/{p.name}")
    with zipfile.ZipFile(www / "maps.zip", "w") as z:
        for image_set in ("train2017", "val2017"):
            for p in sorted((src / "coco" / "stuffthingmaps" / image_set).iterdir()):
                z.write(p, f"{image_set}/{p.name}")
    data = tmp_path / "data"
    load("coco-stuff-164k").prepare(data, {"train2017": (f"{url}/train2017.zip", "train2017.zip", None),
                                           "val2017": (f"{url}/val2017.zip", "val2017.zip", None),
                                           "stuffthingmaps": (f"{url}/maps.zip", "maps.zip", None)})
    for image_set in ("train2017", "val2017"):
        ours, made = semseg.coco_stuff(data, image_set), semseg.coco_stuff(src, image_set)
        assert ours.keys == made.keys and len(ours) > 50
        assert all(bool((ours[i]["mask"] == made[i]["mask"]).all()) for i in range(0, len(ours), 7))


def test_prepare_ade20k_from_an_archive_of_the_fixture_layout(server, tmp_path):
    """ADEChallengeData2016.zip, packed from the fixture as MIT ships it (one top folder), comes out
    where ``ovnb.data.semseg.ade20k`` reads it, unchanged."""
    from ovnb.data import fixtures, semseg

    www, url = server
    src = tmp_path / "src"
    fixtures.ade20k(src)
    with zipfile.ZipFile(www / "ade.zip", "w") as z:
        for p in sorted((src / "ADEChallengeData2016").rglob("*")):
            if p.is_file():
                z.write(p, str(p.relative_to(src)))
    data = tmp_path / "data"
    load("ade20k-150").prepare(data, {"ade": (f"{url}/ade.zip", "ade.zip", None)})
    ours, made = semseg.ade20k(data), semseg.ade20k(src)
    assert ours.keys == made.keys and len(ours) == 50
    assert all(bool((ours[i]["mask"] == made[i]["mask"]).all()) for i in range(0, len(ours), 7))


def test_prepare_cityscapes_from_archives_the_user_downloaded(tmp_path):
    """Cityscapes needs a login: prepare finds the two archives in DATA_ROOT/downloads, or says where to
    get them; what it extracts is what ``ovnb.data.semseg.cityscapes`` reads."""
    from ovnb.data import fixtures, semseg

    src = tmp_path / "src"
    fixtures.cityscapes(src)
    data = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match="cityscapes-dataset.com"):
        load("cityscapes-19").prepare(data)
    (data / "downloads").mkdir(parents=True)
    for key, name in (("leftImg8bit", "leftImg8bit_trainvaltest.zip"), ("gtFine", "gtFine_trainvaltest.zip")):
        with zipfile.ZipFile(data / "downloads" / name, "w") as z:
            for p in sorted((src / "cityscapes" / key).rglob("*")):
                if p.is_file():
                    z.write(p, str(p.relative_to(src / "cityscapes")))
    load("cityscapes-19").prepare(data)
    ours, made = semseg.cityscapes(data), semseg.cityscapes(src)
    assert ours.keys == made.keys and len(ours) == 6
    assert all(bool((ours[i]["mask"] == made[i]["mask"]).all()) for i in range(len(ours)))
    from ovnb.data import panoptic

    ours, made = panoptic.cityscapes_panoptic(data), panoptic.cityscapes_panoptic(src)  # from the same archive
    assert ours.keys == made.keys and all(ours[i]["segments_info"] == made[i]["segments_info"] for i in range(6))


def test_prepare_pascal_context_from_archives_of_the_fixture_layout(server, tmp_path):
    """VOC 2010's tar and PASCAL-Context's trainval.tar.gz, packed from the fixture as the hosts ship them,
    come out where ``ovnb.data.semseg.pascal_context`` reads them, unchanged."""
    from ovnb.data import fixtures, semseg

    www, url = server
    src = tmp_path / "src"
    fixtures.pascal_context(src)
    voc = src / "VOCdevkit" / "VOC2010"
    with tarfile.open(www / "voc2010.tar", "w") as t:
        for sub in ("JPEGImages", "ImageSets"):
            t.add(voc / sub, arcname=f"VOCdevkit/VOC2010/{sub}")
    with tarfile.open(www / "context.tar.gz", "w:gz") as t:
        t.add(voc / "trainval", arcname="trainval")
    data = tmp_path / "data"
    load("pascal-context").prepare(data, {"voc2010": (f"{url}/voc2010.tar", "voc2010.tar", None),
                                          "context": (f"{url}/context.tar.gz", "context.tar.gz", None)})
    for classes in (59, 459):
        ours, made = semseg.pascal_context(data, "val", classes), semseg.pascal_context(src, "val", classes)
        assert ours.keys == made.keys and len(ours) == 16
        assert all(bool((ours[i]["mask"] == made[i]["mask"]).all()) for i in range(len(ours)))


def _ade_full_zip(path, images):
    """A zip in ADE20K_2021_17_01's layout: ``images/ADE/<split>/<scene>/ADE_*.jpg`` and ``*_seg.png``
    whose R / 10 * 256 + G is the object id."""
    with zipfile.ZipFile(path, "w") as z:
        for split, name, image, ids in images:
            seg = np.zeros((*ids.shape, 3), np.uint8)
            seg[..., 0], seg[..., 1] = (ids // 256) * 10, ids % 256
            folder = f"ADE20K_2021_17_01/images/ADE/{split}/home/kitchen"
            z.writestr(f"{folder}/{name}.jpg", _image_bytes(image, "JPEG"))
            z.writestr(f"{folder}/{name}_seg.png", _image_bytes(seg, "PNG"))


def test_prepare_ade20k_847_converts_object_ids_to_train_ids_and_resizes(tmp_path):
    """ADE20K-full needs a registration: prepare finds the zip in DATA_ROOT/downloads or says where to get
    it; it maps object ids (R / 10 * 256 + G) to the 847 train ids by the table (wall 2978 -> 0, person
    1831 -> 11, an id outside the 847 -> ignored), converts validation images only, and brings a
    shorter side above 512 down to 512 (the mask by nearest neighbour)."""
    from ovnb.data import semseg

    data = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match="groups.csail.mit.edu"):
        load("ade20k-847").prepare(data)
    small = np.array([[2978, 2978, 1831], [1831, 5, 0]], np.int64)  # wall, person; 5 and 0 are none of the 847
    big = np.zeros((600, 1200), np.int64)
    big[:, :600], big[:, 600:] = 2978, 3148  # wall | adding machine (train id 846)
    (data / "downloads").mkdir(parents=True)
    _ade_full_zip(data / "downloads" / "ADE20K_2021_17_01.zip", [
        ("validation", "ADE_val_00000001", np.zeros((2, 3, 3), np.uint8), small),
        ("validation", "ADE_val_00000002", np.zeros((600, 1200, 3), np.uint8), big),
        ("training", "ADE_train_00000001", np.zeros((2, 3, 3), np.uint8), small)])
    load("ade20k-847").prepare(data)
    val = semseg.ade20k_full(data)
    assert val.keys == ["ADE_val_00000001", "ADE_val_00000002"]
    assert val[0]["mask"].tolist() == [[0, 0, 11], [11, 255, 255]]
    resized = val[1]
    assert resized["image"].shape == (3, 512, 1024) and resized["mask"].shape == (512, 1024)
    assert set(resized["mask"][:, :512].unique().tolist()) == {0} and set(resized["mask"][:, 512:].unique().tolist()) == {846}
    base = data / "ADE20K_2021_17_01"
    assert not (base / "annotations_detectron2" / "training").exists()
