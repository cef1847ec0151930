"drnb.synth: determinism, exact masks and boxes, ICDR grade rules, class frequencies, microaneurysm size, layout writers."
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest, cv2
from drnb.core import MASK_TYPES, LESION_TYPES, check_records, RECORD_COLUMNS
from drnb.synth import (SynthConfig, synth_fundus, icdr_grade, mask_boxes, lesion_contrast, downsample, isolated_lesions,
                        make_synthetic, read_synthetic, write_layout, synthetic_dataset, SYNTH_PRESETS, split_indices)

def test_same_seed_and_index_give_the_same_image():
    a, b = synth_fundus(5, 17, 256), synth_fundus(5, 17, 256)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes and a.grade == b.grade
    assert all(np.array_equal(a.masks[t], b.masks[t]) for t in MASK_TYPES)
    assert not np.array_equal(a.image, synth_fundus(5, 18, 256).image)
    assert not np.array_equal(a.image, synth_fundus(6, 17, 256).image)

def test_same_eye_at_any_resolution():
    "The disc lands at the same relative place at 256 and 1024 pixels."
    a, b = synth_fundus(1, 2, 256, grade=0, nuisances=False), synth_fundus(1, 2, 1024, grade=0, nuisances=False)
    ca = np.argwhere(a.masks['OD']).mean(0)/256; cb = np.argwhere(b.masks['OD']).mean(0)/1024
    assert np.abs(ca - cb).max() < 0.01

@pytest.mark.parametrize('grade', [1, 2, 3, 4])
def test_masks_are_exactly_where_lesions_were_drawn(grade):
    f = synth_fundus(3, grade, 512, grade=grade, nuisances=False)
    clean = synth_fundus(3, grade, 512, grade=grade, nuisances=False, lesions=False)
    diff = np.abs(f.image.astype(int) - clean.image.astype(int)).max(-1)
    for t in LESION_TYPES:
        if f.masks[t].any(): assert (diff[f.masks[t]] > 0).all(), t           # every mask pixel was painted
    drawn = diff > 0
    lesion_any = np.any([f.masks[t] for t in LESION_TYPES], 0)
    near = cv2.dilate(lesion_any.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=12) > 0   # soft edges of SE and HE
    if grade < 4: assert not (drawn & ~near).any()                            # nothing painted far from a mask (grade 4 adds new vessels)

def test_grade_rules():
    for i in range(6):
        g0 = synth_fundus(11, i, 256, grade=0, nuisances=False)
        assert not any(g0.masks[t].any() for t in LESION_TYPES) and g0.meta['nv'] is False
        g1 = synth_fundus(11, i, 256, grade=1, nuisances=False)
        assert g1.masks['MA'].any() and not any(g1.masks[t].any() for t in ('HE', 'EX', 'SE'))
        g2 = synth_fundus(11, i, 256, grade=2)
        assert any(g2.meta['counts'][t] for t in ('HE', 'EX', 'SE')) and min(g2.meta['he_quadrants']) <= 20
        g3 = synth_fundus(11, i, 256, grade=3)
        assert min(g3.meta['he_quadrants']) > 20 and not g3.meta['nv']
        g4 = synth_fundus(11, i, 256, grade=4)
        assert g4.meta['nv'] and g4.meta['nv_box'] is not None
        for f in (g0, g1, g2, g3, g4): assert icdr_grade(f.meta['counts'], f.meta['he_quadrants'], f.meta['nv']) == f.true_grade
    assert icdr_grade({'MA': 1}) == 1 and icdr_grade({'MA': 1, 'SE': 1}) == 2 and icdr_grade({}, nv=True) == 4

def test_new_vessels_are_drawn_near_their_box():
    with_nv = synth_fundus(2, 0, 512, grade=4, nuisances=False)
    without = synth_fundus(2, 0, 512, grade=4, nuisances=False, lesions=False)
    x0, y0, x1, y1 = [int(round(v)) for v in with_nv.meta['nv_box']]
    diff = np.abs(with_nv.image.astype(int) - without.image.astype(int)).max(-1)
    lesion_any = np.any([with_nv.masks[t] for t in LESION_TYPES], 0)
    assert (diff[y0:y1+1, x0:x1+1] > 0)[~lesion_any[y0:y1+1, x0:x1+1]].sum() > 20

def test_boxes_contain_their_mask_components():
    f = synth_fundus(4, 9, 512, grade=3)
    assert f.boxes == mask_boxes(f.masks)
    for t in MASK_TYPES:
        covered = np.zeros_like(f.masks[t])
        for b in f.boxes:
            if b[0] == t:
                covered[b[2]:b[4], b[1]:b[3]] = True
                sub = f.masks[t][b[2]:b[4], b[1]:b[3]]
                assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any()   # tight
        assert not (f.masks[t] & ~covered).any()                                                 # complete
    assert sum(b[0] == 'OD' for b in f.boxes) == 1

def test_class_frequencies_follow_the_config():
    cfg = SynthConfig(p_ungradable=0)
    grades = np.array([synth_fundus(8, i, 64, config=cfg).true_grade for i in range(600)])
    freq = np.bincount(grades, minlength=5)/len(grades)
    assert np.abs(freq - np.array(cfg.class_freqs)).max() < 0.06, freq
    flat = SynthConfig(class_freqs=(1, 1, 1, 1, 1), p_ungradable=0)
    freq = np.bincount([synth_fundus(8, i, 64, config=flat).true_grade for i in range(400)], minlength=5)/400
    assert np.abs(freq - 0.2).max() < 0.07, freq

def test_label_noise_moves_grades_to_neighbours():
    cfg = SynthConfig(label_noise=0.3, p_ungradable=0)
    fs = [synth_fundus(9, i, 64, config=cfg) for i in range(300)]
    noisy = [f for f in fs if f.meta['label_noise']]
    assert 0.2 < len(noisy)/len(fs) < 0.4
    assert all(abs(f.grade - f.true_grade) == 1 for f in noisy) and all(f.grade == f.true_grade for f in fs if not f.meta['label_noise'])

def test_ungradable_images_have_no_grade():
    f = synth_fundus(0, 0, 128, nuisances=dict(ungradable=(0.6, 0.01)))
    assert f.grade is None and not f.gradable and f.true_grade in range(5)

def test_microaneurysm_contrast_halves_after_4x_downsampling():
    "Acceptance 3: an isolated microaneurysm's contrast against its surroundings falls by at least half at 1/4 resolution."
    ratios = []
    for i in range(6):
        f = synth_fundus(2019, i, 1024, grade=1, nuisances=False)
        for b in isolated_lesions(f):
            m = np.zeros_like(f.masks['MA']); m[b[2]:b[4], b[1]:b[3]] = f.masks['MA'][b[2]:b[4], b[1]:b[3]]
            full = lesion_contrast(f.image, m)
            assert full > 0.2                                             # visible at the source resolution
            ratios.append(lesion_contrast(downsample(f.image), downsample(m), ring=2)/full)
    assert len(ratios) >= 3
    assert np.median(ratios) <= 0.5, ratios

def test_contrast_of_a_hand_made_dot():
    "A 2x2 dark dot on flat grey: contrast 0.5 at full resolution, a quarter of that after 4x area downsampling."
    img = np.full((64, 64, 3), 200, np.uint8); img[32:34, 32:34] = 100
    m = np.zeros((64, 64), bool); m[32:34, 32:34] = True
    assert lesion_contrast(img, m) == pytest.approx(0.5)
    assert lesion_contrast(downsample(img), downsample(m), ring=2) == pytest.approx(0.125, abs=0.01)

def test_make_synthetic_round_trip(tmp_path):
    df = make_synthetic(tmp_path/'ds', n=dict(train=5, test=3), size=128, seed=3, config=SynthConfig(class_freqs=(1,)*5))
    assert list(df.columns[:len(RECORD_COLUMNS)]) == list(RECORD_COLUMNS)
    check_records(df)
    assert df.split.tolist() == ['train']*5 + ['test']*3
    assert df.idx.tolist() == [0, 1, 2, 3, 4, 6, 7, 8]                           # test starts on an even index: patients stay in one split
    back = read_synthetic(tmp_path/'ds')
    assert back.image.tolist() == df.image.tolist() and back.boxes.tolist() == df.boxes.tolist()
    assert back.grade.fillna(-1).tolist() == df.grade.fillna(-1).tolist()
    for _, r in back.iterrows():
        f = synth_fundus(3, r.idx, 128, config=SynthConfig(class_freqs=(1,)*5))
        assert np.array_equal(cv2.imread(r.image)[..., ::-1], f.image)
        assert set(r.masks) == {t for t in MASK_TYPES if f.masks[t].any()}
        for t, p in r.masks.items(): assert np.array_equal(cv2.imread(p, cv2.IMREAD_GRAYSCALE) > 0, f.masks[t])
    assert sorted(p.name for p in (tmp_path/'ds').iterdir()) == ['images', 'masks', 'records.json']

def test_split_indices_keep_patients_together():
    idx = split_indices(dict(train=3, valid=3, test=2))
    assert [i for s, i in idx] == [0, 1, 2, 4, 5, 6, 8, 9]
    patients = {}
    for s, i in idx: patients.setdefault(i//2, set()).add(s)
    assert all(len(v) == 1 for v in patients.values())

FLAT = SynthConfig(class_freqs=(1,)*5, p_ungradable=0.25)

def _files(root): return sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())

def test_idrid_layout(tmp_path):
    df = write_layout(tmp_path, 'idrid', n=dict(train=6, test=4), size=128, seed=1, config=FLAT)
    files = _files(tmp_path)
    seg = df[df.part == 'segmentation']; grd = df[df.part == 'grading']
    assert 'B. Disease Grading/2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv' in files
    assert 'B. Disease Grading/2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv' in files
    assert 'B. Disease Grading/1. Original Images/a. Training Set/IDRiD_001.jpg' in files
    assert 'A. Segmentation/1. Original Images/a. Training Set/IDRiD_01.jpg' in files
    assert 'A. Segmentation/2. All Segmentation Groundtruths/a. Training Set/5. Optic Disc/IDRiD_01_OD.tif' in files
    csv = pd.read_csv(tmp_path/'B. Disease Grading/2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv')
    assert list(csv.columns[:3]) == ['Image name', 'Retinopathy grade', 'Risk of macular edema ']
    assert csv['Retinopathy grade'].tolist() == grd[grd.split == 'train'].grade.tolist()
    assert grd.grade.notna().all() and seg.grade.isna().all() and (seg.true_grade > 0).all()
    dirs = {'MA': '1. Microaneurysms', 'HE': '2. Haemorrhages', 'EX': '3. Hard Exudates', 'SE': '4. Soft Exudates', 'OD': '5. Optic Disc'}
    for _, r in seg.iterrows():
        stem = Path(r.image).stem
        for t, p in r.masks.items():
            assert Path(p).relative_to(tmp_path).as_posix() == \
                f"A. Segmentation/2. All Segmentation Groundtruths/{'a. Training Set' if r.split == 'train' else 'b. Testing Set'}/{dirs[t]}/{stem}_{t}.tif"
            f = synth_fundus(1, r.idx, 128, config=FLAT)
            assert np.array_equal(cv2.imread(p, cv2.IMREAD_UNCHANGED) > 0, f.masks[t])   # lossless
    assert len(grd) == len(df[df.gradable & (df.part == 'grading')])
    assert not any(f.endswith('.png') for f in files)

def test_ddr_layout(tmp_path):
    df = write_layout(tmp_path, 'ddr', n=dict(train=6, valid=2, test=2), size=128, seed=2, config=FLAT)
    files = _files(tmp_path)
    for split in ('train', 'valid', 'test'): assert f'DR_grading/{split}.txt' in files
    lines = (tmp_path/'DR_grading/train.txt').read_text().split('\n')[:-1]
    grd = df[(df.part == 'grading') & (df.split == 'train')]
    assert lines == [f"{Path(r.image).name} {5 if pd.isna(r.grade) else r.grade}" for _, r in grd.iterrows()]
    assert all(f'DR_grading/train/{l.split()[0]}' in files for l in lines)
    seg = df[df.part == 'segmentation']
    assert len(seg) > 0
    for _, r in seg.iterrows():
        stem = Path(r.image).stem
        assert Path(r.image).relative_to(tmp_path).as_posix() == f'lesion_segmentation/{r.split}/image/{stem}.jpg'
        assert sorted(r.masks) == sorted(LESION_TYPES)
        for t in LESION_TYPES: assert f'lesion_segmentation/{r.split}/label/{t}/{stem}.tif' in files
        import xml.etree.ElementTree as ET
        root = ET.parse(tmp_path/f'lesion_detection/{r.split}/{stem}.xml').getroot()
        boxes = [[o.find('name').text] + [int(o.find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')] for o in root.iter('object')]
        assert boxes == r.boxes and all(b[0] in LESION_TYPES for b in boxes)

def test_eyepacs_layout(tmp_path):
    df = write_layout(tmp_path, 'eyepacs', n=dict(train=8, test=4), size=128, seed=3, config=FLAT)
    lab = pd.read_csv(tmp_path/'trainLabels.csv')
    assert list(lab.columns) == ['image', 'level']
    assert all((tmp_path/'train'/f'{i}.jpeg').is_file() for i in lab.image)
    assert lab.level.tolist() == df[df.split == 'train'].grade.tolist()
    sol = pd.read_csv(tmp_path/'retinopathy_solution.csv')
    assert list(sol.columns) == ['image', 'level', 'Usage'] and set(sol.Usage) <= {'Public', 'Private'}
    assert all((tmp_path/'test'/f'{i}.jpeg').is_file() for i in sol.image)
    assert set(lab.image.str.split('_').str[1]) <= {'left', 'right'}
    assert all(Path(p).stem.split('_')[0] == str(int(pt) + 1) for pt, p in zip(df.patient, df.image))
    assert df.gradable.all()                                                            # ungradable images are left out

def test_yolo_layout(tmp_path):
    df = write_layout(tmp_path, 'yolo', n=6, size=160, seed=4, config=FLAT)
    assert (tmp_path/'classes.txt').read_text().split() == ['optic_disc', 'hard_exudates', 'haemorrhage']
    names = {0: 'OD', 1: 'EX', 2: 'HE'}
    for _, r in df.iterrows():
        p = Path(r.image); assert p.parent == tmp_path/'images' and p.suffix == '.png'
        H, W = cv2.imread(str(p)).shape[:2]
        back = []
        for line in p.with_suffix('.txt').read_text().split('\n'):
            if not line: continue
            c, cx, cy, w, h = line.split(); c, cx, cy, w, h = int(c), float(cx)*W, float(cy)*H, float(w)*W, float(h)*H
            back.append([names[c], round(cx - w/2), round(cy - h/2), round(cx + w/2), round(cy + h/2)])
        assert back == r.boxes
        assert df.grade.isna().all()

def test_unknown_layout_and_bad_config_are_named():
    with pytest.raises(ValueError, match="unknown layout 'kaggle'"): write_layout('/tmp/nowhere', 'kaggle')
    with pytest.raises(ValueError, match='class_freqs'): SynthConfig(class_freqs=(1, 2))
    with pytest.raises(ValueError, match='grade must be 0-4'): synth_fundus(0, 0, 64, grade=7)

def test_preset_cache_is_trusted_only_when_complete(tmp_path, monkeypatch):
    monkeypatch.setitem(SYNTH_PRESETS, 'mini', dict(n=dict(train=4, test=2), size=96, seed=1, config=dict(p_ungradable=0.)))
    df = synthetic_dataset('mini', path=tmp_path/'mini', verbose=False)
    assert len(df) == 6 and (tmp_path/'mini'/'manifest.json').is_file()
    m = json.loads((tmp_path/'mini'/'manifest.json').read_text())
    assert m['complete'] and m['preset'] == 'mini'
    (tmp_path/'mini'/'images'/'00000.png').write_bytes(b'')   # a stale file stays unless the cache is judged incomplete
    assert len(synthetic_dataset('mini', path=tmp_path/'mini')) == 6
    (tmp_path/'mini'/'manifest.json').unlink()                # half-written: no manifest
    df = synthetic_dataset('mini', path=tmp_path/'mini', verbose=False)
    assert (tmp_path/'mini'/'images'/'00000.png').stat().st_size > 0
    monkeypatch.setitem(SYNTH_PRESETS, 'mini', dict(SYNTH_PRESETS['mini'], seed=2))   # changed parameters: regenerated
    synthetic_dataset('mini', path=tmp_path/'mini', verbose=False)
    assert json.loads((tmp_path/'mini'/'manifest.json').read_text())['seed'] == 2
    assert not list(tmp_path.glob('mini.partial*'))
    (tmp_path/'other').mkdir(); (tmp_path/'other'/'notes.txt').write_text('mine')   # never replaces a folder it did not write
    with pytest.raises(FileExistsError, match='not a synthetic dataset'): synthetic_dataset('mini', path=tmp_path/'other', verbose=False)
    assert (tmp_path/'other'/'notes.txt').read_text() == 'mine'

def test_bench_preset_is_sized_for_the_budget():
    p = SYNTH_PRESETS['bench']
    assert p['size'] == 1024 and p['n']['test'] >= 1000 and 1000 <= p['n']['train'] <= 1500
    assert all(k % 2 == 0 for k in p['n'].values())
