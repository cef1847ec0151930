"Readers of public layouts on more real public samples (tests/fixtures/real: APTOS 2019, Messidor-2, IDRiD segmentation): real label and mask files, stand-in photographs, values written by hand from the files."
import shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from drnb.data.formats import *

REAL = Path(__file__).parent/'fixtures'/'real'
MORE_DIRS = ['aptos', 'messidor2']

def real_sample(tmp_path, name):
    "A copy of one real sample (readers write nothing into the fixtures)."
    shutil.copytree(REAL/name, tmp_path/name); return tmp_path/name

def by_name(df): return {Path(p).name: r for p,(_,r) in zip(df.image, df.iterrows())}

@pytest.mark.parametrize('name', MORE_DIRS)
def test_real_more_has_source_and_layout(name):
    src = (REAL/name/'SOURCE').read_text()
    for field in ('repository:', 'commit:', 'path:', 'licence:', 'STAND-IN'): assert field in src, (name, field)
    assert detect_layout(REAL/name) == name
    assert f'`{name}/`' in (REAL/'README.md').read_text()

# ---- APTOS 2019: first lines of the competition's train.csv / test.csv ---------------------------------------
APTOS_TRAIN = {'000c1434d8d7': 2, '001639a390f0': 4, '0024cdab0c1e': 1, '002c21358ce6': 0, '005b95c28852': 0}   # train.csv lines 2-6
APTOS_TEST = ['0005cfc8afb6', '003f0afdcd15', '006efc72b638']                                                      # test.csv lines 2-4

def test_real_aptos_header_as_published():
    assert (REAL/'aptos'/'train.csv').read_text().splitlines()[0] == 'id_code,diagnosis'
    assert (REAL/'aptos'/'test.csv').read_text().splitlines()[0] == 'id_code'

def test_real_aptos(tmp_path):
    df = read_dataset(real_sample(tmp_path, 'aptos'))
    assert set(df.source) == {'aptos'} and len(df) == 5 + 3
    tr,te = df[df.split == 'train'], df[df.split == 'test']
    assert {Path(p).stem: int(g) for p,g in zip(tr.image, tr.grade)} == APTOS_TRAIN
    assert [Path(p).name for p in tr.image] == [f'{i}.png' for i in APTOS_TRAIN]                        # file order kept
    assert all(Path(p).parent.name == 'train_images' for p in tr.image)
    assert [Path(p).stem for p in te.image] == APTOS_TEST and te.grade.isna().all()                   # test.csv has no grade
    assert all(Path(p).parent.name == 'test_images' for p in te.image)

def test_real_aptos_missing_image_named(tmp_path):
    root = real_sample(tmp_path, 'aptos')
    (root/'train_images'/'0024cdab0c1e.png').unlink()
    with pytest.raises(DatasetError, match=r'0024cdab0c1e.png: listed image is missing \(listed in train.csv\)'): read_aptos(root)
    df = read_aptos(root, on_error='skip')
    assert '0024cdab0c1e' not in {Path(p).stem for p in df.image} and len(df) == 7
    assert len(skip_report(df)) == 1

# ---- Messidor-2: the adjudicated grades file (Krause et al. 2018), whole -------------------------------------
M2_PRESENT = {'20051020_43808_0100_PP.png': (0, 0),      # messidor_data.csv line 2: 0,0,1
              '20051020_43906_0100_PP.png': (2, 1),      # line 5: 2,1,1
              'IM000012.jpg': (2, 0)}                    # line 1060: 2,0,1
M2_UNGRADABLE = ['20060411_58550_0200_PP.png', 'IM002385.jpg', 'IM003718.jpg', 'IM004176.jpg']   # lines 694, 1415, 1598, 1660: ',,,0'

def test_real_messidor2_file_as_published():
    lines = (REAL/'messidor2'/'messidor_data.csv').read_text().splitlines()
    assert lines[0] == 'image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable' and len(lines) == 1 + 1748
    assert [l.split(',')[0] for l in lines if l.endswith(',,,0')] == M2_UNGRADABLE

def test_real_messidor2(tmp_path):
    df = read_dataset(real_sample(tmp_path, 'messidor2'), on_error='skip')
    r = by_name(df)
    assert set(r) == set(M2_PRESENT)                                                   # the ungradable stand-in is not kept
    assert {n: (int(x.grade), int(x.dme)) for n,x in r.items()} == M2_PRESENT
    assert set(df.source) == {'messidor2'} and set(df.split) == {''}
    assert df.patient.isna().all() and df.eye.isna().all()                              # no messidor-2.csv (exam pairs) here
    assert df.attrs['excluded'] == {'ungradable': 4}
    rep = skip_report(df)
    assert len(rep) == 1748 - 4 - 3 and rep.problem.eq('listed image is missing (listed in messidor_data.csv)').all()
    with pytest.raises(DatasetError, match=r'20051020_43832_0100_PP.png: listed image is missing'):  # line 3, the first absent one
        read_messidor2(tmp_path/'messidor2')

def test_real_messidor2_extension_case(tmp_path):
    "An image whose extension differs in case from the grades file (IM000012.JPG for IM000012.jpg) is still found."
    root = real_sample(tmp_path, 'messidor2')
    (root/'IMAGES'/'IM000012.jpg').rename(root/'IMAGES'/'IM000012.JPG')
    r = by_name(read_messidor2(root, on_error='skip'))
    assert 'IM000012.JPG' in r and (int(r['IM000012.JPG'].grade), int(r['IM000012.JPG'].dme)) == (2, 0)

# ---- IDRiD segmentation: two real hard-exudate masks (1-bit palette TIFFs, 4288x2848), whole ------------------
IDRID_SEG = 'idrid_seg'
IDRID_EX = {'IDRiD_01.jpg': ('train', 113286, (591, 819, 2938, 2400)),       # IDRiD_01_EX.tif: index-1 pixels, box x0,y0,x1,y1 (inclusive)
            'IDRiD_55.jpg': ('test', 497671, (975, 343, 3112, 2273))}        # IDRiD_55_EX.tif, computed once with PIL/numpy
GT = 'A. Segmentation/2. All Segmentation Groundtruths'

def box(m): ys,xs = np.nonzero(m); return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))

def test_real_idrid_seg_has_source_and_layout():
    src = (REAL/IDRID_SEG/'SOURCE').read_text()
    for field in ('repository:', 'commit:', 'path:', 'licence:', 'STAND-IN'): assert field in src, field
    assert detect_layout(REAL/IDRID_SEG) == 'idrid'
    assert f'`{IDRID_SEG}/`' in (REAL/'README.md').read_text()

def test_real_idrid_seg_masks_as_published():
    "The format drnb relies on: palette mode, index 0 background, index 1 (red) lesion, IDRiD's size."
    for f,n in [(f'{GT}/a. Training Set/3. Hard Exudates/IDRiD_01_EX.tif', 113286), (f'{GT}/b. Testing Set/3. Hard Exudates/IDRiD_55_EX.tif', 497671)]:
        with Image.open(REAL/IDRID_SEG/f) as im:
            assert (im.format, im.mode, im.size) == ('TIFF', 'P', (4288, 2848)) and im.getpalette()[:6] == [0, 0, 0, 255, 0, 0]
            vals,counts = np.unique(np.asarray(im), return_counts=True)
        assert vals.tolist() == [0, 1] and counts[1] == n

def test_real_idrid_segmentation(tmp_path):
    df = read_dataset(real_sample(tmp_path, IDRID_SEG), check_images=True)
    assert set(df.source) == {'idrid'} and set(df.part) == {'segmentation'} and len(df) == 2
    r = by_name(df)
    assert set(r) == set(IDRID_EX)
    for name,(split,n,bb) in IDRID_EX.items():
        x = r[name]
        assert x.split == split and list(x.masks) == ['EX']                  # MA, HE, SE, OD: none here, so none annotated (absent)
        assert Path(x.masks['EX']).name == name.replace('.jpg', '_EX.tif') and Path(x.masks['EX']).parent.name == '3. Hard Exudates'
        m = read_mask(x.masks['EX'])
        assert m.shape == (2848, 4288) and m.sum() == n and box(m) == bb    # palette index 1 is lesion
    assert df.grade.isna().all() and df.boxes.map(len).eq(0).all()

def test_real_idrid_seg_mask_size_checked(tmp_path):
    root = real_sample(tmp_path, IDRID_SEG)
    Image.new('L', (1072, 712)).save(root/'A. Segmentation'/'1. Original Images'/'b. Testing Set'/'IDRiD_55.jpg')   # a quarter-size image
    with pytest.raises(DatasetError, match=r'IDRiD_55_EX.tif: EX mask is 4288x2848 but its image IDRiD_55.jpg is 1072x712'): read_idrid(root)
    df = read_idrid(root, on_error='skip')
    assert [Path(p).name for p in df.image] == ['IDRiD_01.jpg'] and len(skip_report(df)) == 1
