"Tests of drnb.data.block: augmentations keep masks, boxes, patch grids and the twin aligned; patch labels; bad masks; batch shapes."
import numpy as np, pandas as pd, pytest, torch, cv2, torch.nn.functional as F
from pathlib import Path
from fastai.vision.augment import AffineCoordTfm
from drnb.core import seed_everything, LESION_TYPES, MASK_TYPES
from drnb.data.formats import DatasetError
from drnb.data.block import *

LESIONS = [('EX', 180, 150, 60), ('EX', 520, 380, 44), ('HE', 300, 420, 36), ('MA', 600, 200, 20)]  # type, x0, y0, side

def _write(p, a):
    p.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(p), a[..., ::-1] if a.ndim == 3 else a)

def lesion_photo(folder:Path, stem:str='eye', w:int=800, h:int=600, lesions=LESIONS, mask_size=None):
    "A hand-built 'photograph': dark red disc, white square lesions at known places, their masks and boxes (a record)."
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (w//2, h//2), min(w, h)//2 - 4, (120, 45, 20), -1)
    masks = {t: np.zeros((h, w), np.uint8) for t,*_ in lesions}
    boxes = []
    for t,x,y,s in lesions:
        img[y:y+s, x:x+s] = 255; masks[t][y:y+s, x:x+s] = 255; boxes.append([t, x, y, x+s, y+s])
    _write(folder/f'{stem}.png', img)
    mfiles = {}
    for t,m in masks.items():
        if mask_size: m = cv2.resize(m, mask_size, interpolation=cv2.INTER_NEAREST)
        mfiles[t] = str(folder/f'{stem}_{t}.png'); _write(Path(mfiles[t]), m)
    return dict(image=str(folder/f'{stem}.png'), source='test', split='train', patient=None, eye=None, grade=2, masks=mfiles, boxes=boxes)

@pytest.fixture(scope='module')
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp('lesions')
    rs = [lesion_photo(d, f'eye{i}') for i in range(3)]
    rs.append(dict(lesion_photo(d, 'val'), split='valid'))
    return pd.DataFrame(rs)

def _affine(dl): return next(t for t in dl.after_batch.fs if isinstance(t, AffineCoordTfm))

def test_augmentation_keeps_masks_boxes_and_twin_aligned(records):
    aug = dict(max_rotate=45., p_affine=1., max_zoom=1.3, p_lighting=1.)
    dls = fundus_dataloaders(records, targets=('masks', 'boxes', 'patches'), size=128, hires=256, bs=3, aug=aug,
                             normalize=False, num_workers=0, device='cpu', shuffle=False)
    flips = rotations = 0
    for seed in range(8):
        seed_everything(seed)
        img,hi,masks,boxes,labels,patches = [o.as_subclass(torch.Tensor) for o in dls.train.one_batch()]
        mat = _affine(dls.train).mat
        flips += int((torch.linalg.det(mat[:, :, :2]) < 0).sum()); rotations += int((mat[:, 0, 1].abs() > 0.05).sum())
        # the twin got the same geometric and colour transform: halved, it is the view
        test_diff = (F.avg_pool2d(hi, 2) - img).abs().mean()
        assert test_diff < 0.02, f"seed {seed}: twin differs from the view by {test_diff:.3f}"
        for i in range(len(img)):
            lesion = img[i, 1] > 0.6                       # white squares on a dark red fundus, whatever the lighting
            m = masks[i].amax(0) > 0.5
            assert lesion.sum() > 100
            assert (lesion & m).sum() >= 0.9 * lesion.sum(), f"seed {seed} item {i}: lesion pixels outside the masks"
            # masks mark every view pixel a lesion touches, so they are a pixel wider than the bright squares
            assert (m & lesion).sum() >= 0.7 * m.sum(), f"seed {seed} item {i}: masks where there is no lesion"
            n,_,stats,_ = cv2.connectedComponentsWithStats(m.numpy().astype(np.uint8))
            px = ((boxes[i][labels[i] > 0] + 1) * 64).numpy()
            assert len(px) == n - 1 == 4, (len(px), n - 1)
            for x,y,w,h,_ in stats[1:]:                     # each lesion's mask lies in a box, up to 2 pixels
                assert any(bx0 - 2 <= x and by0 - 2 <= y and x + w <= bx1 + 2 and y + h <= by1 + 2 for bx0,by0,bx1,by1 in px)
            # the patch grid agrees with the transformed masks: cells they cover by 5% are labelled, labelled cells touch them
            got, lab = patches[i].numpy() > 0, patch_labels(masks[i].numpy(), 16) > 0
            assert (got >= (patch_labels(masks[i].numpy(), 16, thr=0.05) > 0)).all(), f"seed {seed} item {i}: lesion cells not labelled"
            assert (got <= (cv2.dilate(lab.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)).all(), f"seed {seed} item {i}: stray cells"
            assert got.sum() > 0
    assert flips > 0 and rotations > 0, (flips, rotations)

def test_valid_is_not_augmented(records):
    dls = fundus_dataloaders(records, targets=('masks',), size=128, bs=1, normalize=False, num_workers=0, device='cpu')
    img,masks = dls.valid.one_batch()
    want = lesion_masks(records.iloc[3].to_dict(), 128)
    np.testing.assert_array_equal(masks[0].numpy(), want[[LESION_TYPES.index(t) for t in LESION_TYPES]])

def test_patch_labels_by_hand():
    m = np.zeros((4, 8, 8), np.float32)       # 8x8 image, 2x2 grid of 4x4 cells
    m[0, 0:1, 0:3] = 1                        # MA: 3/16 of cell (0,0)
    m[2, 4:8, 4:7] = 1                        # EX: 12/16 of cell (1,1)
    m[1, 4:8, 7:8] = 1                        # HE: 4/16 of cell (1,1), less than EX
    m[3, 0:1, 4:5] = 1                        # SE: 1/16 of cell (0,1)
    np.testing.assert_allclose(patch_coverage(m, 2)[:, 1, 1], [0, 4/16, 12/16, 0])
    np.testing.assert_array_equal(patch_labels(m, 2, thr=0.), [[1, 4], [0, 3]])
    np.testing.assert_array_equal(patch_labels(m, 2, thr=0.1), [[1, 0], [0, 3]])
    np.testing.assert_array_equal(patch_labels(m, 2, thr=0.5), [[0, 0], [0, 3]])
    np.testing.assert_array_equal(patch_labels({'EX': m[2] > 0}, 2), [[0, 0], [0, 3]])      # a dict, missing types empty
    boxes = [['MA', 0, 0, 3, 1], ['EX', 4, 4, 7, 8], ['HE', 7, 4, 8, 8], ['SE', 4, 0, 5, 1], ['OD', 0, 0, 8, 8]]
    np.testing.assert_array_equal(patch_labels(boxes, 2, size=(8, 8)), [[1, 4], [0, 3]])    # OD is not a lesion type
    np.testing.assert_allclose(patch_coverage([['EX', 1.5, 0, 3.5, 4]], 2, size=(8, 8))[2], [[0.5, 0], [0, 0]])  # fractional edges
    t = torch.from_numpy(m)[None]                                                             # batched tensors stay tensors
    test = patch_labels(t, 2); assert isinstance(test, torch.Tensor) and test.shape == (1, 2, 2)

def test_wrong_size_mask_names_both_files(tmp_path):
    r = lesion_photo(tmp_path, 'bad', mask_size=(400, 300))
    with pytest.raises(DatasetError) as e: lesion_masks(r, 64)
    msg = str(e.value)
    assert 'bad_' in msg and 'bad.png' in msg and '400x300' in msg and '800x600' in msg, msg
    df = pd.DataFrame([r, dict(lesion_photo(tmp_path, 'good'), split='valid')])
    with pytest.raises(DatasetError, match='bad_'): fundus_dataloaders(df, targets=('masks',), size=64, bs=1, num_workers=0, device='cpu').train.one_batch()

@pytest.mark.parametrize('targets,regression', [(('grade',), False), (('grade',), True), (('masks',), False), (('patches',), False), (('boxes',), False)])
def test_batch_shapes(records, targets, regression):
    dls = fundus_dataloaders(records, targets=targets, regression=regression, size=64, hires=128, bs=2, grid=8, num_workers=0, device='cpu')
    b = dls.train.one_batch()
    assert b[0].shape == (2, 3, 64, 64) and b[0].dtype == torch.float32 and type(b[0]).__name__ == 'TensorImage'
    assert b[1].shape == (2, 3, 128, 128) and isinstance(b[1], TensorHiRes)
    y = b[2:]
    if targets == ('grade',): assert y[0].shape == (2,) and y[0].dtype == (torch.float32 if regression else torch.int64)
    if targets == ('masks',): assert y[0].shape == (2, 4, 64, 64) and y[0].dtype == torch.float32 and set(y[0].unique().tolist()) <= {0., 1.}
    if targets == ('patches',): assert y[0].shape == (2, 8, 8) and y[0].dtype == torch.int64 and y[0].max() <= 4
    if targets == ('boxes',):
        assert y[0].shape[0] == 2 and y[0].shape[2] == 4 and y[1].shape == y[0].shape[:2] and y[1].dtype == torch.int64
        assert set(y[1][y[1] > 0].tolist()) <= {1, 2, 3}   # MA, HE, EX of MASK_TYPES
    assert dls.n_inp == 2 and dls.hires_scale == 2

def test_missing_grade_and_split(records):
    df = records.assign(grade=pd.NA)
    with pytest.raises(ValueError, match='no grade'): fundus_dataloaders(df, num_workers=0)
    tr,va = fundus_splits(records.assign(split='train'), valid_pct=0.25, seed=1)
    assert len(tr) == 3 and len(va) == 1 and fundus_splits(records.assign(split='train'), 0.25, 1)[1].image.tolist() == va.image.tolist()
