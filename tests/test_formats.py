"Readers of public layouts: real public samples (tests/fixtures/real), round trips (write a dataset in the layout, read it back: same grades, masks, boxes) and bad input."
import shutil, socket
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from drnb.data.formats import *
from drnb.core import RECORD_COLUMNS

FIXTURES = Path(__file__).parent/'fixtures'

# ---- tiny writers for the layouts drnb.synth does not write -------------------------------------------------
def img(p, w=64, h=48, val=(180, 90, 40)):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), val, np.uint8)).save(p); return p

def mask(p, w=64, h=48, box=(10, 10, 20, 16)):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((h, w), np.uint8); x0,y0,x1,y1 = box; m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(p); return m > 0

def write(p, text): p = Path(p); p.parent.mkdir(parents=True, exist_ok=True); p.write_text(text); return p

def ddb1_xml(marks):
    "DiaretDB1 XML in the real files' format (DTD line, radius direction x/y, angle) of (kind, params, type, confidence) markings."
    def region(kind, prm):
        if kind == 'circle': (x,y),r = prm; return f'<circleregion><centroid><coords2d>{x},{y}</coords2d></centroid><radius direction="x">{r}</radius></circleregion>'
        if kind == 'ellipse': (x,y),(a,b) = prm; return (f'<ellipseregion><centroid><coords2d>{x},{y}</coords2d></centroid>'
                                                        f'<radius direction="x">{a}</radius><radius direction="y">{b}</radius><angle>0</angle></ellipseregion>')
        return '<polygonregion>' + ''.join(f'<coords2d>{x},{y}</coords2d>' for x,y in prm) + '</polygonregion>'
    ms = ''.join(f'<marking>{region(k, p)}<representativepoint><coords2d>0,0</coords2d></representativepoint>'
                 f'<confidencelevel>{c}</confidencelevel><markingtype>{t}</markingtype></marking>' for k,p,t,c in marks)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE imgannotooldata SYSTEM "http://www.it.lut.fi/project/imageret/diaretdb1/imgannotool.dtd">\n'
            f'<imgannotooldata><imagename>x.png</imagename><markinglist>{ms}</markinglist></imgannotooldata>')

def rect(x0, y0, x1, y1): return [(x0,y0), (x1,y0), (x1,y1), (x0,y1)]   # fillPoly fills x0..x1, y0..y1 inclusive

def by_image(df): return {Path(p).name: r for p,(_,r) in zip(df.image, df.iterrows())}

# ---- real public samples (tests/fixtures/real: real label/XML/mask files, stand-in photographs) -------------
REAL = FIXTURES/'real'
LAYOUT_DIRS = ['eyepacs', 'idrid', 'ddr', 'diaretdb1', 'eophtha', 'yolo']

def real_sample(tmp_path, name):
    "A copy of one real sample (readers write nothing into the fixtures)."
    shutil.copytree(REAL/name, tmp_path/name); return tmp_path/name

@pytest.mark.parametrize('name', LAYOUT_DIRS)
def test_real_sample_has_source_and_layout(name):
    src = (REAL/name/'SOURCE').read_text()
    for field in ('repository:', 'commit:', 'path:', 'licence:'): assert field in src, (name, field)
    assert detect_layout(REAL/name) == name
    assert 'labels real, images not redistributable' in (REAL/'README.md').read_text()

def test_real_eyepacs(tmp_path):
    df = read_dataset(real_sample(tmp_path, 'eyepacs'))
    got = {Path(p).stem: (g, e, u) for p,g,e,u in zip(df.image, df.grade, df.eye, df.usage)}
    assert got == {'10_left': (0, 'left', ''), '10_right': (0, 'right', ''), '13_left': (0, 'left', ''), '13_right': (0, 'right', ''),
                   '15_left': (1, 'left', ''), '15_right': (2, 'right', ''), '16_left': (4, 'left', ''), '16_right': (4, 'right', ''),
                   '1_left': (0, 'left', 'Private'), '1_right': (0, 'right', 'Private'), '2_left': (0, 'left', 'Public'), '2_right': (0, 'right', 'Public')}
    assert set(df[df.usage == ''].split) == {'train'} and df.groupby('patient').size().eq(2).all()

def test_real_idrid_grading(tmp_path):
    df = read_dataset(real_sample(tmp_path, 'idrid'), on_error='skip')
    assert [(Path(p).name, s, g, m) for p,s,g,m in zip(df.image, df.split, df.grade, df.macular_edema_risk)] == \
           [('IDRiD_001.jpg', 'train', 3, 2), ('IDRiD_001.jpg', 'test', 4, 0)]               # first rows of each CSV, by hand
    rep = skip_report(df)
    assert len(rep) == 412 + 102 and rep.problem.str.startswith('listed image is missing (listed in ').all()   # 413 + 103 rows listed

def test_real_ddr_voc_lowercase_names(tmp_path):
    df = read_dataset(real_sample(tmp_path, 'ddr'))
    r = df.iloc[0]
    assert Path(r.image).name == '007-1789-100.jpg' and r.split == 'test' and r.part == 'detection'
    assert r.boxes == [['EX', 1126, 1089, 1142, 1098], ['HE', 900, 818, 970, 857]]         # the file says <name>ex</name>, <name>he</name>

def test_real_yolo_codras(tmp_path):
    df = read_dataset(real_sample(tmp_path, 'yolo'))
    b = {Path(p).stem: bs for p,bs in zip(df.image, df.boxes)}
    W,H = 4288, 2848
    cx,cy,w,h = 0.6497201492537313, 0.47542134831460675, 0.12173507462686567, 0.1875      # images/0019.txt, by hand
    assert b['0019'][0][0] == 'OD' and np.allclose(b['0019'][0][1:], [(cx-w/2)*W, (cy-h/2)*H, (cx+w/2)*W, (cy+h/2)*H])
    assert [t for t,*_ in b['0005']] == ['OD', 'HE', 'EX'] and [t for t,*_ in b['0006']] == ['OD']

def test_real_eophtha_mask_values(tmp_path):
    root = real_sample(tmp_path, 'eophtha')
    df = read_dataset(root, mask_dir=tmp_path/'cache')
    r = by_image(df)
    assert r['DS000DGS.JPG'].mask_values == {255: 177} and Path(r['DS000DGS.JPG'].masks['MA']).name == 'DS000DGS.png'   # clean: the file itself
    assert r['C0000887.jpg'].mask_values == {200: 208, 239: 1, 247: 3, 255: 318}
    assert r['C0001365.jpg'].mask_values == {200: 59}                                        # no 255 at all
    src = np.asarray(Image.open(root/'e_optha_MA'/'Annotation_MA'/'E0008389'/'C0000887.png'))
    np.testing.assert_array_equal(read_mask(r['C0000887.jpg'].masks['MA']), src == 255)   # 255 is lesion, 200/239/247 are not
    assert not read_mask(r['C0001365.jpg'].masks['MA']).any()
    both = by_image(read_eophtha(root, mask_dir=tmp_path/'cache', lesion_values=(200, 255)))
    assert read_mask(both['C0000887.jpg'].masks['MA']).sum() == 208 + 318 and read_mask(both['C0001365.jpg'].masks['MA']).sum() == 59
    assert not any(p.is_relative_to(root) for p in (tmp_path/'cache').rglob('*'))

DDB1_ELLIPSE = dict(xml='diaretdb1_image014_03.xml', centre=(742, 793), radii=(56, 20), angle=149)   # written by hand from the XML

def hand_ellipse(shape, centre, radii, angle):
    "The ellipse drawn with numpy: radius a along x, b along y, turned counter-clockwise by `angle` degrees as displayed."
    (xc,yc),(a,b),t = centre, radii, np.radians(angle)
    yy,xx = np.mgrid[:shape[0], :shape[1]]
    u = (xx-xc)*np.cos(t) - (yy-yc)*np.sin(t)                                                 # y points down on the displayed image
    v = (xx-xc)*np.sin(t) + (yy-yc)*np.cos(t)
    return (u/a)**2 + (v/b)**2 <= 1

def iou(a, b): return (a & b).sum() / (a | b).sum()

def test_real_diaretdb1_reads_with_ellipses(tmp_path):
    root = real_sample(tmp_path, 'diaretdb1')
    df = read_dataset(root, mask_dir=tmp_path/'cache', on_error='skip')
    assert [Path(p).name for p in df.image] == ['diaretdb1_image001.png', 'diaretdb1_image014.png'] and set(df.split) == {'train'}
    rep = skip_report(df)
    assert len(rep) == 87 and rep.problem.str.startswith('listed image is missing (listed in ddb1_v02_01_t').all()   # 89 listed, 2 present
    assert (df.n_experts == 4).all() and all(sorted(m) == ['EX', 'HE', 'MA', 'OD', 'SE'] for m in df.masks)
    with pytest.raises(DatasetError, match=r'diaretdb1_image003.png: listed image is missing'): read_diaretdb1(root, mask_dir=tmp_path/'cache')
    marks = read_diaretdb1_xml(root/'ddb1_v02_01'/'groundtruth'/'diaretdb1_image001_03.xml')   # the file drnb used to stop at
    assert ('ellipse', ((609., 93.), (18., 16.), 6.)) in [m['region'] for m in marks]

def test_real_diaretdb1_ellipse_counter_clockwise(tmp_path):
    root = real_sample(tmp_path, 'diaretdb1')
    e = DDB1_ELLIPSE
    marks = read_diaretdb1_xml(root/'ddb1_v02_01'/'groundtruth'/e['xml'])
    (region,) = [m['region'] for m in marks if m['region'][0] == 'ellipse' and m['region'][1][0] == e['centre']]
    hand = hand_ellipse((1152, 1500), e['centre'], e['radii'], e['angle'])
    assert iou(rasterise_region(region, (1152, 1500)), hand) > 0.9
    assert iou(hand_ellipse((1152, 1500), e['centre'], e['radii'], -e['angle']), hand) < 0.5   # the mirrored one would fail
    union = read_mask(by_image(read_diaretdb1(root, k=1, mask_dir=tmp_path/'cache', on_error='skip'))['diaretdb1_image014.png'].masks['HE'])
    assert (hand & union).sum() / hand.sum() > 0.97                                          # the reader's k=1 consensus holds it

def test_real_diaretdb1_min_confidence(tmp_path):
    root = real_sample(tmp_path, 'diaretdb1')
    x3 = read_diaretdb1_xml(root/'ddb1_v02_01'/'groundtruth'/'diaretdb1_image014_03.xml')
    assert {m['confidence'] for m in x3} == {'High', 'Medium', 'Low'}
    he = lambda lvl: expert_masks(x3, (1152, 1500), lvl)['HE']
    medium_ellipse, low_circle = (793, 742), (171, 947)                                      # (row, col): a Medium ellipse, a Low circle
    assert he('Low')[low_circle] and not he('Medium')[low_circle] and not he('High')[low_circle]
    assert he('Low')[medium_ellipse] and he('Medium')[medium_ellipse] and not he('High')[medium_ellipse]
    assert (he('moderate') == he('Medium')).all() and (he(None) == he('Low')).all()
    read = lambda lvl: read_mask(by_image(read_diaretdb1(root, k=1, min_confidence=lvl, mask_dir=tmp_path/'cache', on_error='skip'))['diaretdb1_image014.png'].masks['HE'])
    hi,me,lo = read('High'), read('Medium'), read('Low')
    assert hi.sum() < me.sum() < lo.sum() and (hi <= me).all() and (me <= lo).all()       # union of 4 experts: nested by level
    with pytest.raises(ValueError, match='not one of High, Medium, Low'): read_diaretdb1(root, min_confidence='Sure', mask_dir=tmp_path/'cache')

def test_mask_cache_keyed_by_source_and_parameters(tmp_path):
    a,b = real_sample(tmp_path/'a', 'diaretdb1'), real_sample(tmp_path/'b', 'diaretdb1')   # two copies of one dataset
    cache = tmp_path/'cache'
    ma = read_diaretdb1(a, mask_dir=cache, on_error='skip'); mb = read_diaretdb1(b, mask_dir=cache, on_error='skip')
    assert set(ma.masks[0].values()).isdisjoint(mb.masks[0].values())
    files = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(files) == 2*2*5
    again = read_diaretdb1(a, mask_dir=cache, on_error='skip')                               # same sources and parameters
    assert list(again.masks[0].values()) == list(ma.masks[0].values()) and {p: p.stat().st_mtime_ns for p in cache.iterdir()} == files
    k3 = read_diaretdb1(a, k=3, mask_dir=cache, on_error='skip')
    assert set(k3.masks[0].values()).isdisjoint(ma.masks[0].values()) and len(list(cache.iterdir())) == 3*2*5
    assert clear_mask_cache(folder=cache) == 30 and not cache.exists()

def test_default_mask_cache_is_under_data_path(tmp_path, monkeypatch):
    monkeypatch.setenv('DRNB_DATA_PATH', str(tmp_path/'data'))
    from drnb.core import get_settings; get_settings(reload=True)
    try:
        df = read_diaretdb1(real_sample(tmp_path, 'diaretdb1'), on_error='skip')
        assert all(Path(p).parent == tmp_path/'data'/'mask_cache'/'diaretdb1' for p in df.masks[0].values())
        assert mask_cache_dir('diaretdb1') == tmp_path/'data'/'mask_cache'/'diaretdb1' and clear_mask_cache('diaretdb1') == 10
    finally:
        monkeypatch.delenv('DRNB_DATA_PATH'); get_settings(reload=True)

def test_diaretdb1_errors_name_the_file_once(tmp_path):
    root = real_sample(tmp_path, 'diaretdb1')
    f = root/'ddb1_v02_01'/'groundtruth'/'diaretdb1_image014_03.xml'
    f.write_text(f.read_text().replace('<radius direction="y">20</radius>', '<radius direction="z">20</radius>'))
    with pytest.raises(DatasetError) as e: read_diaretdb1_xml(f)
    assert str(e.value).count('diaretdb1_image014_03.xml') == 1 and 'radius direction' in str(e.value)
    df = read_diaretdb1(root, mask_dir=tmp_path/'cache', on_error='skip')
    bad = skip_report(df)[lambda r: r.file.str.endswith('_03.xml')]
    assert len(bad) == 1 and 'diaretdb1_image014_03.xml' not in bad.problem.iloc[0]
    f.write_text(f.read_text().replace('<confidencelevel>Low</confidencelevel>', '<confidencelevel>Unsure</confidencelevel>', 1))
    with pytest.raises(DatasetError, match=r"_03.xml: marking \d+: confidence level 'Unsure' is not one of High, Medium, Low"): read_diaretdb1_xml(f)

# ---- round trips through drnb.synth.write_layout (idrid, ddr, eyepacs, yolo) --------------------------------
synth = pytest.importorskip('drnb.synth')
SIZE, SEED = 96, 11

def synth_truth(idx): return synth.synth_fundus(SEED, idx, SIZE)

@pytest.mark.parametrize('layout,n,reader', [('idrid', dict(train=8, test=3), read_idrid), ('ddr', dict(train=6, valid=3, test=3), read_ddr),
                                             ('eyepacs', dict(train=8, test=4), read_eyepacs), ('yolo', 8, read_yolo)])
def test_round_trip_synth_layouts(tmp_path, layout, n, reader):
    exp = synth.write_layout(tmp_path, layout, n=n, size=SIZE, seed=SEED)
    got = reader(tmp_path)
    assert detect_layout(tmp_path) == layout
    gradable = exp if layout != 'ddr' else exp[~((exp.part == 'grading') & exp.grade.isna())]
    if layout == 'ddr': assert got.attrs['excluded'].get('ungradable (grade 5)', 0) == len(exp) - len(gradable)
    key = lambda df: [str(Path(p)) for p in df.image]
    assert sorted(key(got)) == sorted(key(gradable))
    got = got.set_index(got.image.map(lambda p: str(Path(p))))
    n_masks = n_boxes = 0
    for _,e in gradable.iterrows():
        g = got.loc[str(Path(e.image))]
        assert (pd.isna(g.grade) and pd.isna(e.grade)) or g.grade == e.grade, e.image
        assert g.split == e.split
        if layout == 'eyepacs': assert g.eye == e.eye
        assert sorted(g.masks) == sorted(e.masks), e.image
        truth = synth_truth(e.idx)
        for t,p in g.masks.items():           # pixel-equal to the generator's own mask (not just the file it wrote)
            np.testing.assert_array_equal(read_mask(p), truth.masks[t]); n_masks += 1
        assert len(g.boxes) == len(e.boxes)
        for gb,eb in zip(sorted(g.boxes), sorted(e.boxes)):
            assert gb[0] == eb[0] and np.allclose(gb[1:], eb[1:], atol=1e-3), (gb, eb); n_boxes += 1
    if layout in ('idrid', 'ddr'): assert n_masks > 0
    if layout in ('ddr', 'yolo'): assert n_boxes > 0

def test_eyepacs_patients_keep_both_eyes_together(tmp_path):
    exp = synth.write_layout(tmp_path, 'eyepacs', n=dict(train=8), size=SIZE, seed=SEED)
    got = read_eyepacs(tmp_path)
    pairs = got.merge(exp[['image','patient']].rename(columns=dict(patient='synth_patient')), on='image')
    assert (pairs.groupby('synth_patient').patient.nunique() == 1).all()
    assert set(got.usage) == {''}

# ---- round trips with hand-built fixtures -------------------------------------------------------------------
def test_round_trip_aptos(tmp_path):
    grades = {'000c1434d8d7': 2, '001639a390f0': 4, '0024cdab0c1e': 0}
    write(tmp_path/'train.csv', 'id_code,diagnosis\n' + ''.join(f'{k},{v}\n' for k,v in grades.items()))
    write(tmp_path/'test.csv', 'id_code\n0005cfc8afb6\n')
    for k in grades: img(tmp_path/'train_images'/f'{k}.png')
    img(tmp_path/'test_images'/'0005cfc8afb6.png')
    df = read_dataset(tmp_path)
    assert {Path(p).stem: g for p,g in zip(df.image, df.grade) if not pd.isna(g)} == grades
    assert df.set_index(df.image.map(lambda p: Path(p).stem)).loc['0005cfc8afb6', 'split'] == 'test'
    assert df.grade.isna().sum() == 1

MESSIDOR_ROWS = {'20051019_38557_0100_PP.tif': (0, 0, 'Base11'), '20051020_43808_0100_PP.tif': (2, 1, 'Base11'),   # errata: was 3, 2
                 '20051020_43832_0100_PP.tif': (1, 0, 'Base11'), '20060522_45140_0100_PP.tif': (2, 1, 'Base12')}

def test_round_trip_messidor_xls_with_errata(tmp_path):
    root = tmp_path/'messidor'; shutil.copytree(FIXTURES/'messidor', root)
    for name,(_,_,base) in MESSIDOR_ROWS.items(): img(root/base/name)
    df = read_dataset(root)
    assert detect_layout(root) == 'messidor' and len(df) == 4
    for name,r in by_image(df).items():
        assert (r.messidor_grade, r.macular_edema_risk, r.base) == MESSIDOR_ROWS[name]
        assert pd.isna(r.grade)                                  # Messidor's 0-3 scale is not ICDR: no pretended grade
        assert r.corrected == (name == '20051020_43808_0100_PP.tif')
    assert read_messidor(root, grade_map={0: 0}).grade.notna().sum() == 1

def test_round_trip_messidor_csv_export(tmp_path):
    write(tmp_path/'Base21'/'Annotation_Base21.csv', 'Image name,Ophthalmologic department,Retinopathy grade,Risk of macular edema \n'
          'a.tif,CHU de Brest,3,2\nb.tif,CHU de Brest,0,0\n')
    for n in 'ab': img(tmp_path/'Base21'/f'{n}.tif')
    df = read_messidor(tmp_path)
    assert list(df.messidor_grade) == [3, 0] and list(df.macular_edema_risk) == [2, 0] and list(df.department) == ['CHU de Brest']*2

def test_round_trip_messidor2(tmp_path):
    write(tmp_path/'messidor-2.csv', 'left;right\nIM000001.JPG;IM000002.JPG\nIM000003.JPG;IM000004.JPG\n20051020_43808_0100_PP.png;20051020_43832_0100_PP.png\n')
    write(tmp_path/'messidor_data.csv', 'image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable\n'
          'IM000001.jpg,0.0,0.0,1\nIM000002.jpg,4.0,1.0,1\nIM000003.jpg,,,0\nIM000004.jpg,,0.0,1\n'
          '20051020_43808_0100_PP.png,2.0,0.0,1\n20051020_43832_0100_PP.png,,,0\n')
    for n in ['IM000001.JPG','IM000002.JPG','IM000003.JPG','IM000004.JPG','20051020_43808_0100_PP.png','20051020_43832_0100_PP.png']:
        img(tmp_path/'IMAGES'/n)
    df = read_dataset(tmp_path)
    got = {n: (r.grade, r.dme, r.patient, r.eye) for n,r in by_image(df).items()}
    assert got == {'IM000001.JPG': (0, 0, 'exam0001', 'left'), 'IM000002.JPG': (4, 1, 'exam0001', 'right'),
                   '20051020_43808_0100_PP.png': (2, 0, 'exam0003', 'left')}
    assert df.attrs['excluded'] == {'ungradable': 2, 'no adjudicated grade': 1}

def test_round_trip_idrid_missing_masks_are_none_annotated(tmp_path):
    S = tmp_path/'A. Segmentation'; gt = S/'2. All Segmentation Groundtruths'/'b. Testing Set'
    img(S/'1. Original Images'/'b. Testing Set'/'IDRiD_55.jpg'); img(S/'1. Original Images'/'b. Testing Set'/'IDRiD_56.jpg')
    ma = mask(gt/'1. Microaneurysms'/'IDRiD_55_MA.tif', box=(3, 4, 5, 6)); od = mask(gt/'5. Optic Disc'/'IDRiD_55_OD.tif', box=(40, 10, 55, 30))
    df = read_idrid(tmp_path)
    r = by_image(df)
    assert sorted(r['IDRiD_55.jpg'].masks) == ['MA', 'OD'] and r['IDRiD_56.jpg'].masks == {}
    np.testing.assert_array_equal(read_mask(r['IDRiD_55.jpg'].masks['MA']), ma)
    np.testing.assert_array_equal(read_mask(r['IDRiD_55.jpg'].masks['OD']), od)
    assert set(df.split) == {'test'}

def test_round_trip_idrid_grading_trailing_empty_columns(tmp_path):
    G = tmp_path/'B. Disease Grading'
    write(G/'2. Groundtruths'/IDRID_GRADE_CSVS['test'], 'Image name,Retinopathy grade,Risk of macular edema ,,,\nIDRiD_001,4,1,,,\nIDRiD_002,1,0,,,\n')
    for n in ['IDRiD_001','IDRiD_002']: img(G/'1. Original Images'/'b. Testing Set'/f'{n}.jpg')
    df = read_idrid(tmp_path)
    assert list(df.grade) == [4, 1] and list(df.macular_edema_risk) == [1, 0] and list(df.columns[:8]) == list(RECORD_COLUMNS)

def test_round_trip_ddr_voc_boxes(tmp_path):
    img(tmp_path/'lesion_detection'/'test'/'007-0001-100.jpg')
    write(tmp_path/'lesion_detection'/'test'/'007-0001-100.xml', '<annotation><filename>007-0001-100.jpg</filename>'
          + ''.join(f'<object><name>{t}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>'
                    for t,a,b,c,d in [('MA',1,2,3,4), ('SE',10,12,30,40)]) + '</annotation>')
    df = read_ddr(tmp_path)
    assert df.boxes[0] == [['MA', 1, 2, 3, 4], ['SE', 10, 12, 30, 40]] and df.part[0] == 'detection' and df.split[0] == 'test'

def make_ddb1(root, experts):
    "A DiaretDB1 folder: one 120x90 image, one XML per expert, and the split list."
    d = root/'ddb1_v02_01'; img(d/'images'/'diaretdb1_image001.png', 120, 90)
    for e,marks in enumerate(experts, 1): write(d/'groundtruth'/f'diaretdb1_image001_0{e}.xml', ddb1_xml(marks))
    write(d/'ddb1_v02_01_train.txt', 'images/diaretdb1_image001.png ' + ' '.join(f'groundtruth/diaretdb1_image001_0{e}.xml' for e in range(1, len(experts)+1)) + '\n')
    return d

RECTS = [(10, 10, 39, 29), (20, 15, 49, 34), (25, 5, 44, 24), (100, 70, 110, 80)]

def rect_counts():
    c = np.zeros((90, 120), int)
    for x0,y0,x1,y1 in RECTS: c[y0:y1+1, x0:x1+1] += 1
    return c

@pytest.mark.parametrize('k', [1, 2, 3, 4])
def test_round_trip_diaretdb1_consensus(tmp_path, k):
    experts = [[('polygon', rect(*r), 'Haemorrhages', 'High')] for r in RECTS]
    experts[0].append(('circle', ((90, 40), 10), 'Red_small_dots', 'Medium'))
    experts[1].append(('ellipse', ((90, 40), (8, 5)), 'Red_small_dots', 'Low'))        # inside the circle
    experts[2].append(('polygon', rect(60, 60, 70, 70), 'IRMA', 'High'))          # not a drnb type: ignored
    make_ddb1(tmp_path, experts)
    df = read_dataset(tmp_path, mask_dir=tmp_path/'masks', k=k)
    r = df.iloc[0]
    assert r.split == 'train' and pd.isna(r.grade) and r.n_experts == 4 and sorted(r.masks) == ['EX', 'HE', 'MA', 'SE']
    np.testing.assert_array_equal(read_mask(r.masks['HE']), rect_counts() >= k)     # hand-computed consensus
    assert not read_mask(r.masks['EX']).any() and not read_mask(r.masks['SE']).any()
    ma = read_mask(r.masks['MA'])
    area = lambda a, b: np.pi*(a+.5)*(b+.5)                                          # a filled raster ellipse, edges included
    if k == 1: assert abs(ma.sum() - area(10, 10)) < 0.1*area(10, 10) and ma[40, 99]  # union: the circle (it holds the ellipse)
    if k == 2: assert abs(ma.sum() - area(8, 5)) < 0.1*area(8, 5) and ma[40, 97] and not ma[40, 99] and not ma[46, 90]  # both: the ellipse
    if k >= 3: assert not ma.any()

def test_diaretdb1_min_confidence_and_no_network(tmp_path, monkeypatch):
    experts = [[('polygon', rect(*RECTS[0]), 'Hard_exudates', c)] for c in ('High', 'Low', 'High', 'Medium')]
    make_ddb1(tmp_path, experts)
    def no_network(*a, **k): raise AssertionError('the reader tried to open a network connection')
    monkeypatch.setattr(socket.socket, 'connect', no_network)                       # the DTD URL must never be fetched
    m = lambda **kw: read_mask(read_diaretdb1(tmp_path, mask_dir=tmp_path/str(kw), k=3, **kw).masks[0]['EX'])
    assert m().sum() == 30*20 and m(min_confidence='Medium').sum() == 30*20 and m(min_confidence='High').sum() == 0
    assert m(min_confidence='Moderate').sum() == 30*20                             # the old spelling is an alias of Medium

def test_round_trip_eophtha_root_and_case(tmp_path):
    ma = mask(tmp_path/'e_optha_MA'/'Annotation_MA'/'E0000404'/'C0001273.png', box=(30, 20, 33, 23))
    img(tmp_path/'e_optha_MA'/'MA'/'E0000404'/'C0001273.JPG')
    img(tmp_path/'e_optha_MA'/'healthy'/'E0000043'/'DS000F0Y.jpg'); write(tmp_path/'e_optha_MA'/'MA'/'E0000404'/'Thumbs.db', 'x')
    ex = mask(tmp_path/'e_optha_EX'/'Annotation_EX'/'E0000406'/'C0001884_EX.png', box=(5, 5, 25, 9))
    img(tmp_path/'e_optha_EX'/'EX'/'E0000406'/'C0001884.jpg')
    for root,n in [(tmp_path, 3), (tmp_path/'e_optha_MA', 2), (tmp_path/'e_optha_EX', 1)]:
        df = read_dataset(root, mask_dir=tmp_path/'empty')
        assert len(df) == n and not any('Thumbs' in p for p in df.image)
    r = by_image(read_eophtha(tmp_path, mask_dir=tmp_path/'empty'))
    np.testing.assert_array_equal(read_mask(r['C0001273.JPG'].masks['MA']), ma)
    np.testing.assert_array_equal(read_mask(r['C0001884.jpg'].masks['EX']), ex)
    assert r['DS000F0Y.jpg'].lesion_free and not read_mask(r['DS000F0Y.jpg'].masks['MA']).any()
    assert r['C0001273.JPG'].patient == 'E0000404' and r['C0001273.JPG'].source == 'eophtha_ma'

def test_round_trip_yolo_images_labels_layout(tmp_path):
    write(tmp_path/'obj.names', 'microaneurysm\nsoft_exudates\n')
    img(tmp_path/'images'/'val'/'a.jpg', 200, 100); write(tmp_path/'labels'/'val'/'a.txt', '0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.2 0.4\n')
    img(tmp_path/'images'/'train'/'b.jpg', 200, 100)                                # no label file: no boxes
    df = read_yolo(tmp_path)
    r = by_image(df)
    assert r['a.jpg'].split == 'valid' and r['a.jpg'].boxes == [['MA', 75.0, 25.0, 125.0, 75.0], ['SE', 0.0, 0.0, 40.0, 40.0]]
    assert r['b.jpg'].boxes == [] and r['b.jpg'].split == 'train'

def test_read_idrid_boxes_real_data(idrid_boxes):
    df = read_idrid_boxes(idrid_boxes)
    assert len(df) == 514 and df.grade.isna().all() and set(df.source) == {'idrid_boxes'}
    assert int(df.lesions_annotated.sum()) == 290                                    # README: 290 carry lesion boxes
    has = lambda t: int(df.boxes.map(lambda bs: any(b[0] == t for b in bs)).sum())
    assert has('EX') == 221 and has('HE') == 216 and not has('MA')                 # HE includes microaneurysms there
    assert not df[~df.lesions_annotated].boxes.map(lambda bs: any(b[0] != 'OD' for b in bs)).any()
    r = df.set_index(df.image.map(lambda p: Path(p).name)).loc['0001.jpg']
    c,cx,cy,w,h = (idrid_boxes/'images'/'0001.txt').read_text().split('\n')[0].split()   # first line, by hand
    cx,cy,w,h = map(float, (cx,cy,w,h))
    assert c == '0' and np.allclose(r.boxes[0][1:], [(cx-w/2)*1024, (cy-h/2)*680, (cx+w/2)*1024, (cy+h/2)*680]) and r.boxes[0][0] == 'OD'
    assert read_idrid_boxes(idrid_boxes, seed=42).split.tolist() == df.split.tolist()
    assert read_idrid_boxes(idrid_boxes, seed=7).split.tolist() != df.split.tolist()
    frac = df.groupby('split').lesions_annotated.mean()
    assert (abs(frac - 290/514) < 0.03).all() and abs((df.split == 'test').mean() - 0.15) < 0.01

def test_split_by_seed_ignores_order():
    keys = [f'{i:04d}' for i in range(100)]
    a = dict(zip(keys, split_by_seed(keys, seed=3))); b = dict(zip(keys[::-1], split_by_seed(keys[::-1], seed=3)))
    assert a == b and sorted(pd.Series(a).value_counts().tolist()) == [15, 15, 70]

# ---- bad input: an error naming the file and the problem, or a skip report -------------------------------------
def eyepacs(tmp_path, labels='image,level\n10_left,0\n10_right,2\n'):
    write(tmp_path/'trainLabels.csv', labels)
    for n in ['10_left', '10_right']: img(tmp_path/'train'/f'{n}.jpeg')
    return tmp_path

def test_bad_on_error_value(tmp_path):
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"): read_eyepacs(eyepacs(tmp_path), on_error='ignore')

@pytest.mark.parametrize('damage,problem', [(lambda b: b[:len(b)//3], 'corrupt or truncated image'),
                                            (lambda b: b'\x00garbage' * 40, 'corrupt or truncated image')])
def test_corrupt_or_truncated_image(tmp_path, damage, problem):
    p = eyepacs(tmp_path)/'train'/'10_right.jpeg'; p.write_bytes(damage(p.read_bytes()))
    assert len(read_eyepacs(tmp_path)) == 2                                           # not decoded unless asked
    with pytest.raises(DatasetError, match=f'10_right.jpeg: {problem}'): read_eyepacs(tmp_path, check_images=True)
    df = read_eyepacs(tmp_path, check_images=True, on_error='skip')
    assert len(df) == 1 and skip_report(df).file.str.endswith('10_right.jpeg').all() and problem in skip_report(df).problem[0]

def test_csv_missing_column_always_raises(tmp_path):
    eyepacs(tmp_path, 'image,grade\n10_left,0\n')
    for on_error in ('raise', 'skip'):
        with pytest.raises(DatasetError, match=r"trainLabels.csv: missing column\(s\) \['level'\]"): read_eyepacs(tmp_path, on_error=on_error)
    write(tmp_path/'m'/'Base11'/'Annotation_Base11.csv', 'Image name,Retinopathy grade\na.tif,0\n')
    with pytest.raises(DatasetError, match=r"Annotation_Base11.csv: missing column\(s\) \['Ophthalmologic department', 'Risk of macular edema'\]"):
        read_messidor(tmp_path/'m')

def test_grade_out_of_range(tmp_path):
    eyepacs(tmp_path, 'image,level\n10_left,0\n10_right,7\n')
    with pytest.raises(DatasetError, match=r"trainLabels.csv: 10_right: grade '7' out of range 0-4"): read_eyepacs(tmp_path)
    df = read_eyepacs(tmp_path, on_error='skip')
    assert len(df) == 1 and skip_report(df).to_dict('records') == [dict(file=str(tmp_path/'trainLabels.csv'), problem="10_right: grade '7' out of range 0-4")]
    root = tmp_path/'m'; shutil.copytree(FIXTURES/'messidor', root); (root/'Base11'/'Annotation_Base11_update20161024.xls').unlink(); shutil.rmtree(root/'Base12')
    write(root/'Base11'/'Annotation_Base11.csv', 'Image name,Ophthalmologic department,Retinopathy grade,Risk of macular edema\nz.tif,x,4,0\n')
    with pytest.raises(DatasetError, match=r"Annotation_Base11.csv: z.tif: Retinopathy grade: grade '4' out of range 0-3"): read_messidor(root)
    write(tmp_path/'ddr'/'DR_grading'/'test.txt', 'a.jpg 9\n'); img(tmp_path/'ddr'/'DR_grading'/'test'/'a.jpg')
    with pytest.raises(DatasetError, match=r"test.txt: line 1 a.jpg: grade '9' out of range 0-4"): read_ddr(tmp_path/'ddr')

def test_listed_image_missing(tmp_path):
    (eyepacs(tmp_path)/'train'/'10_left.jpeg').unlink()
    with pytest.raises(DatasetError, match=r'10_left.jpeg: listed image is missing \(listed in trainLabels.csv\)'): read_eyepacs(tmp_path)
    assert skip_report(read_eyepacs(tmp_path, on_error='skip')).problem.tolist() == ['listed image is missing (listed in trainLabels.csv)']
    d = make_ddb1(tmp_path/'db', [[('polygon', rect(*RECTS[0]), 'Haemorrhages', 'High')]]*4)
    (d/'images'/'diaretdb1_image001.png').unlink()
    with pytest.raises(DatasetError, match='diaretdb1_image001.png: listed image is missing'): read_diaretdb1(tmp_path/'db', mask_dir=tmp_path/'mk')

@pytest.mark.parametrize('layout', ['idrid', 'ddr', 'eophtha'])
def test_mask_size_differs_from_image(tmp_path, layout):
    if layout == 'idrid':
        img(tmp_path/'A. Segmentation'/'1. Original Images'/'a. Training Set'/'IDRiD_01.jpg')
        bad = tmp_path/'A. Segmentation'/'2. All Segmentation Groundtruths'/'a. Training Set'/'2. Haemorrhages'/'IDRiD_01_HE.tif'
        reader = read_idrid
    elif layout == 'ddr':
        img(tmp_path/'lesion_segmentation'/'train'/'image'/'x.jpg'); bad = tmp_path/'lesion_segmentation'/'train'/'label'/'HE'/'x.tif'
        reader = read_ddr
    else:
        img(tmp_path/'e_optha_MA'/'MA'/'E1'/'x.JPG'); bad = tmp_path/'e_optha_MA'/'Annotation_MA'/'E1'/'x.png'
        reader = lambda p, **kw: read_eophtha(p, mask_dir=tmp_path/'empty', **kw)
    mask(bad, w=32, h=24)
    with pytest.raises(DatasetError, match=rf'{bad.name}: \w\w mask is 32x24 but its image x?\S* is 64x48'): reader(tmp_path)
    df = reader(tmp_path, on_error='skip')
    assert len(df) == 0 and skip_report(df).file.tolist() == [str(bad)]

def test_unreadable_xml(tmp_path):
    img(tmp_path/'ddr'/'lesion_detection'/'train'/'a.jpg'); img(tmp_path/'ddr'/'lesion_detection'/'train'/'b.jpg')
    write(tmp_path/'ddr'/'lesion_detection'/'train'/'a.xml', '<annotation><object><name>EX</name><bndbox><xmin>1</xmin>')
    write(tmp_path/'ddr'/'lesion_detection'/'train'/'b.xml', '<annotation><object><name>EX</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>')
    with pytest.raises(DatasetError, match='a.xml: unreadable XML'): read_ddr(tmp_path/'ddr')
    df = read_ddr(tmp_path/'ddr', on_error='skip')
    assert len(df) == 1 and df.boxes[0] == [['EX', 1, 1, 3, 4]] and skip_report(df).file[0].endswith('a.xml')
    write(tmp_path/'ddr'/'lesion_detection'/'train'/'a.xml', '<annotation><object><name>IRMA</name></object></annotation>')
    with pytest.raises(DatasetError, match=r"a.xml: object name 'IRMA' is not one of"): read_ddr(tmp_path/'ddr')
    d = make_ddb1(tmp_path/'db', [[('polygon', rect(*RECTS[0]), 'Haemorrhages', 'High')]]*4)
    write(d/'groundtruth'/'diaretdb1_image001_03.xml', '<imgannotooldata><markinglist><marking>')
    with pytest.raises(DatasetError, match='diaretdb1_image001_03.xml: unreadable XML'): read_diaretdb1(tmp_path/'db', mask_dir=tmp_path/'mk')
    assert skip_report(read_diaretdb1(tmp_path/'db', mask_dir=tmp_path/'mk', on_error='skip')).file[0].endswith('_03.xml')

def test_xml_entities_are_refused(tmp_path):
    f = write(tmp_path/'x.xml', '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>')
    with pytest.raises(DatasetError, match='x.xml: XML declares entities; refused'): parse_xml(f)

def test_yolo_bad_label_line(tmp_path):
    write(tmp_path/'classes.txt', 'optic_disc\n'); img(tmp_path/'images'/'a.jpg')
    write(tmp_path/'images'/'a.txt', '0 0.5 0.5 0.1\n')
    with pytest.raises(DatasetError, match=r"a.txt: line 1 '0 0.5 0.5 0.1': expected 'class cx cy w h'"): read_yolo(tmp_path)
    write(tmp_path/'classes.txt', 'vessel\n')
    with pytest.raises(DatasetError, match=r"classes.txt: class name\(s\) \['vessel'\] have no drnb type"): read_yolo(tmp_path)

def test_unknown_layout(tmp_path):
    with pytest.raises(DatasetError, match='no known dataset layout found') as e: detect_layout(tmp_path)
    assert 'datasets.md' not in str(e.value) and 'nbs/02_data.formats.ipynb' in str(e.value)   # a pointer to a page that exists
    assert (Path(__file__).parents[1]/'nbs'/'02_data.formats.ipynb').is_file()
