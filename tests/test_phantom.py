import numpy as np
import pandas as pd
import zarr
from scipy import ndimage

from sonolabel.phantom import make_sequence, read_manifest
from sonolabel.phantom.render import PhantomRenderer


def test_manifest_files_and_ground_truth(phantom_dir):
    recs = read_manifest(phantom_dir)
    assert [r.subject for r in recs] == ["sub-01", "sub-02"]
    for r in recs:
        labels = zarr.open_array(str(phantom_dir / r.labels), mode="r")
        assert labels.shape == (24, 480, 480)
        assert set(np.unique(labels[0])) == set(range(8))  # all seven structures plus background
        kin = pd.read_csv(phantom_dir / r.kinematics)
        assert list(kin.columns) == ["frame", "time", "thumb", "index", "middle", "ring", "little"] and len(kin) == 24


def test_deterministic_and_subjects_differ():
    a = PhantomRenderer(make_sequence(5, 1, 3)).render(2)
    b = PhantomRenderer(make_sequence(5, 1, 3)).render(2)
    c = PhantomRenderer(make_sequence(6, 1, 3)).render(2)
    np.testing.assert_array_equal(a[0], b[0])
    assert (a[1] != c[1]).mean() > 0.05  # another subject, another anatomy


def test_kinematics_isolated_flexions_with_rests():
    seq = make_sequence(0, 1, 1200)
    k = seq.kinematics
    assert k.shape == (1200, 5)
    moving = k.max(1) > 20
    assert 0.2 < moving.mean() < 0.8  # flexions with rests between
    leader = np.argmax(k[moving], 1)
    assert len(np.unique(leader)) == 5  # every finger flexes in turn


def test_tissue_moves_with_flexion_and_speckle_follows():
    seq = make_sequence(1, 1, 400)
    r = PhantomRenderer(seq)
    t_rest = int(np.argmin(seq.kinematics.sum(1)[:40]))
    t_flex = int(np.argmax(seq.kinematics[:, 1:].sum(1)))
    lab_rest, lab_flex = r.render(t_rest)[1], r.render(t_flex)[1]
    assert (lab_rest != lab_flex).mean() > 0.01  # muscles deform with finger flexion
    i0, i1 = r.render(10)[0].astype(float), r.render(11)[0].astype(float)
    corr = np.corrcoef(i0.ravel(), i1.ravel())[0, 1]
    assert 0.5 < corr < 0.999  # speckle moves with tissue and partly decorrelates
    img, lab = r.render(0)
    bone = np.isin(lab, (6, 7))
    assert img[bone].mean() < img[lab == 0].mean()  # bones sit in their acoustic shadow


def test_a_muscle_leaves_the_plane_and_comes_back():
    """phantom.variants.leave_plane: the muscle's labels shrink to nothing and grow back, its place takes the
    surrounding tissue's echo (its fascia fades), and nothing else changes."""
    from sonolabel.phantom.variants import leave_plane

    seq = make_sequence(3, 1, 200)
    (first, stop), *_ = leave_plane(seq, np.random.default_rng(0), "FCU", taper=(10, 11), hold=(20, 21))
    assert stop - first == 10 + 20 + 10
    plain, gone = PhantomRenderer(make_sequence(3, 1, 200)), PhantomRenderer(seq)
    area = [(gone.render(t)[1] == 5).sum() for t in (first - 1, first + 5, first + 15, stop - 5, stop)]
    assert area[0] > 2000 and 0 < area[1] < area[0] and area[2] == 0 and 0 < area[3] < area[0]
    assert abs(area[4] - area[0]) < 0.1 * area[0]  # whole again
    (img, lab), (img0, lab0) = gone.render(first + 15), plain.render(first + 15)
    was = lab0 == 5
    assert (lab[was] == 0).all() and np.array_equal(lab[~was], lab0[~was])
    near = ndimage.binary_dilation(was, iterations=20) & ~ndimage.binary_dilation(was, iterations=8) & (lab0 == 0)
    assert abs(img[was].mean() - img[near].mean()) < 0.1 * img[near].mean()  # its place looks like the tissue around it
    assert np.abs(img[was].astype(int) - img0[was]).mean() > 5
    np.testing.assert_array_equal(gone.render(first - 1)[0], plain.render(first - 1)[0])
