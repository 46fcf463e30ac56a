import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sonolabel import DAVIS, FOREARM, InputError, Palette, load_palette
from sonolabel.quantize import Quantizer, quantize_folder, read_mask, write_index_png


def test_default_palette_matches_reference_colours():
    assert FOREARM.names == ("background", "FDS", "FDP", "FPL", "FCR", "FCU", "ulna", "radius")
    assert FOREARM.colors[2] == (0, 0, 255) and FOREARM.colors[7] == (255, 255, 255)
    assert DAVIS.colors[1] == (128, 0, 0) and load_palette("davis") is DAVIS


def test_palette_json_round_trip_and_validation(tmp_path):
    import json

    f = tmp_path / "p.json"
    f.write_text(json.dumps(FOREARM.to_dict()))
    assert load_palette(f) == FOREARM
    bad = FOREARM.to_dict()
    bad["classes"][2]["color"] = [0, 255, 0]  # same as FDS
    f.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="more than one class"):
        load_palette(f)
    with pytest.raises(InputError, match="background"):
        Palette(("FDS", "FDP"), ((0, 0, 0), (1, 1, 1)))
    with pytest.raises(InputError, match="2 to 255"):
        Palette(("background",), ((0, 0, 0),))
    with pytest.raises(InputError, match="no such palette"):
        load_palette(tmp_path / "missing.json")


def _labels(rng, h=48, w=48, n=8):
    lab = np.zeros((h, w), np.uint8)
    for k in range(1, n):
        y, x = rng.integers(0, h), rng.integers(0, w)
        lab[max(0, y - 8) : y + 8, max(0, x - 8) : x + 8] = k
    return lab


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), pal=st.sampled_from([FOREARM, DAVIS]), noise=st.floats(0, 1))
def test_noise_within_tolerance_round_trips(seed, pal, noise):
    rng = np.random.default_rng(seed)
    lab = _labels(rng)
    tol = 40.0
    # noise vectors of length up to noise*tol (< tol)
    v = rng.normal(size=lab.shape + (3,))
    v *= (noise * tol * 0.999 * rng.random(lab.shape))[..., None] / np.linalg.norm(v, axis=-1, keepdims=True)
    rgb = np.clip(pal.rgb[lab].astype(float) + v, 0, 255)
    rgb = np.rint(rgb).astype(np.uint8)
    # clipping and rounding can move a value at most ~0.9 further; stay inside the tolerance
    dist = np.linalg.norm(rgb.astype(float) - pal.rgb[lab], axis=-1)
    rgb[dist > tol - 0.01] = pal.rgb[lab][dist > tol - 0.01]
    out, rep = Quantizer(pal, tol)(rgb)
    assert rep.unknown_count == 0
    np.testing.assert_array_equal(out, lab)


@settings(max_examples=40, deadline=None)
@given(a=st.integers(0, 7), b=st.integers(0, 7), alpha=st.floats(0.05, 0.95), pal=st.sampled_from([FOREARM, DAVIS]), width=st.integers(1, 2))
def test_blended_edge_never_becomes_a_third_class(a, b, alpha, pal, width):
    if a == b:
        return
    lab = np.full((32, 32), a, np.uint8)
    lab[:, 16:] = b
    rgb = pal.rgb[lab].astype(float)
    blend = alpha * pal.rgb[a] + (1 - alpha) * pal.rgb[b]
    rgb[:, 16 - width + 1 : 17] = blend  # an anti-aliased band between the two regions
    out, _ = Quantizer(pal)(np.rint(rgb).astype(np.uint8))
    assert set(np.unique(out)) <= {a, b}
    np.testing.assert_array_equal(out[:, : 15 - width], a)
    np.testing.assert_array_equal(out[:, 18:], b)


def test_jpeg_masks_quantize_sensibly(margin):
    from conftest import QUALITY_SEED

    rng = np.random.default_rng(1 + QUALITY_SEED)
    lab = np.kron(_labels(rng, 60, 60), np.ones((4, 4), np.uint8))
    buf = io.BytesIO()
    Image.fromarray(FOREARM.rgb[lab]).save(buf, "JPEG", quality=80)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    out, _ = Quantizer(FOREARM)(rgb)
    margin((out == lab).mean(), 0.995, "agreement on JPEG q80 masks")  # robustness run: 0.9999-1


def test_unknown_colours_are_reported():
    lab = np.zeros((40, 50), np.uint8)
    rgb = FOREARM.rgb[lab].copy()
    rgb[10:14, 20:30] = (120, 60, 200)  # far from every colour
    out, rep = Quantizer(FOREARM)(rgb)
    assert rep.unknown_count == 40
    assert rep.unknown_bbox == (10, 20, 14, 30)
    assert rep.unknown_first[0] == (10, 20)
    assert np.isclose(rep.unknown_fraction, 40 / 2000)
    assert set(np.unique(out)) == {0}  # settled from the surrounding background


def test_bgr_masks_detected_when_palette_tells():
    pal = Palette(("background", "a", "b"), ((0, 0, 0), (200, 30, 0), (0, 160, 90)))
    lab = _labels(np.random.default_rng(2), n=3)
    bgr = pal.rgb[lab][..., ::-1].copy()
    q = Quantizer(pal)
    _, rep = q(bgr)
    assert rep.probable_bgr
    out, rep2 = q(bgr, swap_rb=True)
    np.testing.assert_array_equal(out, lab)
    assert rep2.unknown_count == 0
    assert not Quantizer(FOREARM).bgr_detectable  # the forearm palette is closed under the swap


def test_read_mask_kinds(tmp_path):
    lab = _labels(np.random.default_rng(3))
    write_index_png(tmp_path / "p.png", lab, FOREARM)  # palette PNG
    Image.fromarray(lab).save(tmp_path / "i.png")  # index PNG
    Image.fromarray(FOREARM.rgb[lab]).save(tmp_path / "c.png")  # colour PNG
    for name in ("p.png", "i.png", "c.png"):
        out, _ = read_mask(tmp_path / name, FOREARM)
        np.testing.assert_array_equal(out, lab)
    Image.fromarray((lab > 0).astype(np.uint8) * 200).save(tmp_path / "bad.png")
    with pytest.raises(InputError, match="bad.png.*values \\[200\\]"):
        read_mask(tmp_path / "bad.png", FOREARM)


def test_quantize_folder_all_or_nothing(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    lab = _labels(np.random.default_rng(4))
    Image.fromarray(FOREARM.rgb[lab]).save(src / "000001.png")
    bad = FOREARM.rgb[lab].copy()
    bad[:20] = (120, 60, 200)
    Image.fromarray(bad).save(src / "000002.png")
    with pytest.raises(InputError, match="000002.png"):
        quantize_folder(src, out, FOREARM, max_unknown_fraction=0.01)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    reports = quantize_folder(src, out, FOREARM)
    assert sorted(p.name for p in out.iterdir()) == ["000001.png", "000002.png"]
    assert reports[1].unknown_fraction > 0.3
    np.testing.assert_array_equal(np.asarray(Image.open(out / "000001.png")), lab)
