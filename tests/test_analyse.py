"""`drnb analyse` on your own photographs: real idrid_boxes photographs beside a truncated JPEG, a text file and a picture
that is no fundus photograph; the probabilities the run's own evaluation gave; a failing batch that loses only its bad
photograph; bad input named; the HTML report in headless Chromium."""
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from drnb.interpret.analyse import analyse, non_fundus_picture, NOT_CLINICAL
import drnb.interpret.analyse as A
from drnb.methods import load_run
from drnb.runner import resolve_dataset

SMALL = ['-p', 'dataset', 'synthetic:tiny', '-p', 'image_size', '64', '-p', 'epochs', '1', '-p', 'batch_size', '8',
         '-p', 'max_train', '16', '-p', 'n_heatmaps', '1']

def drnb(*args, cwd=None): return subprocess.run([sys.executable, '-m', 'drnb.cli', *args], capture_output=True, text=True, cwd=cwd)

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A baseline trained for one epoch on synthetic:tiny at 64 px through the template (model.pth, run.json, metrics.json, test_probs.pth)."
    out = tmp_path_factory.mktemp('runs')
    r = drnb('run', '-p', 'method', 'baseline', *SMALL, '--out', str(out))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (d,) = [p.parent for p in out.glob('*/run.json')]
    return d

def bad_files(folder:Path, photo:Path):
    "A truncated JPEG (half of `photo`'s bytes), a text file and a photograph-like picture of no eye."
    data = photo.read_bytes()
    (folder/'cut_short.jpg').write_bytes(data[:len(data)//2])
    (folder/'notes.txt').write_text('taken on Monday, left eye first')
    non_fundus_picture().save(folder/'holiday.jpg', quality=90)

@pytest.fixture(scope='module')
def real_folder(tmp_path_factory, idrid_boxes):
    "Three real idrid_boxes photographs (copied out of the data folder into a temporary one) and the three bad files."
    d = tmp_path_factory.mktemp('my_photographs')
    photos = [idrid_boxes/'images'/f'{n:04d}.jpg' for n in (1, 2, 3)]
    for p in photos: shutil.copy(p, d)
    bad_files(d, photos[0])
    return d

def test_drnb_analyse_grades_three_real_photographs_and_says_why_three_files_were_not(run, real_folder, tmp_path):
    out = tmp_path/'report'
    r = drnb('analyse', str(run), str(real_folder), '--out', str(out), '--device', 'cpu')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert '6 file(s): 3 analysed, 1 flagged, 2 skipped' in r.stdout, r.stdout
    t = pd.read_csv(out/'analysis.csv').set_index('file')
    t.index = [Path(f).name for f in t.index]
    test = t.loc[['0001.jpg', '0002.jpg', '0003.jpg']]
    assert (test.status == 'analysed').all() and (test.quality == 'ok').all(), test[['status', 'problem']]
    p = test[[f'p_grade{i}' for i in range(5)]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert (test.grade == p.argmax(1)).all()
    np.testing.assert_allclose(test.p_referable, p[:, 2:].sum(1), atol=1e-6)
    for _, row in test.iterrows():                              # the view and the heatmap overlay are written, boxes inside the photograph
        assert (out/row['view']).is_file() and (out/row['heatmap_gradcam']).is_file()
        boxes = json.loads(row['boxes_gradcam'])
        assert 1 <= len(boxes) <= 3 and all(0 <= x0 < x1 <= 1024 and 0 <= y0 < y1 <= 680 for x0, y0, x1, y1 in boxes), boxes
    assert t.loc['cut_short.jpg', 'status'] == 'skipped' and 'truncated' in t.loc['cut_short.jpg', 'problem']
    assert t.loc['notes.txt', 'status'] == 'skipped' and 'not an image file' in t.loc['notes.txt', 'problem']
    assert t.loc['holiday.jpg', 'status'] == 'flagged' and t.loc['holiday.jpg', 'problem'] == 'not a fundus photograph?'
    assert t.loc['holiday.jpg', 'fov_share'] > A.FOV_SHARE[1] and pd.notna(t.loc['holiday.jpg', 'grade'])
    for name in ('cut_short.jpg', 'notes.txt', 'holiday.jpg'): assert f'{name}: ' in r.stdout
    page = (out/'report.html').read_text()
    assert NOT_CLINICAL in page and 'Trained on synthetic photographs only' in page and 'truncated' in page and 'not an image file' in page

def test_analyse_gives_the_probabilities_of_the_runs_own_evaluation(run):
    recs = resolve_dataset('synthetic:tiny').dropna(subset=['grade'])
    test = recs[recs.split == 'test']
    a = analyse(run, test.image.tolist(), device='cpu', progress=False, bs=5)
    got = a.table.set_index('file').loc[[str(Path(p).resolve()) for p in test.image], [f'p_grade{i}' for i in range(5)]].to_numpy()
    saved = torch.load(run/'test_probs.pth', weights_only=True)['probs'].numpy()       # what the template evaluated
    np.testing.assert_allclose(got, saved, atol=1e-5, rtol=0)
    learn = load_run(run, 'cpu')                                                          # and learn.get_preds on the same files
    ref, _ = learn.get_preds(dl=learn.dls.test_dl(test.to_dict('records'), with_labels=True))
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-5, rtol=0)
    assert a.facts['test'].startswith('quadratic kappa') and 'centre prior' in a.facts['heatmap']

def test_a_failing_batch_loses_only_its_bad_photograph(run, tmp_path, monkeypatch):
    recs = resolve_dataset('synthetic:tiny')
    for p in recs.image[:4]: shutil.copy(p, tmp_path)
    bad = Path(recs.image.iloc[1]).name
    real_dl = A.photo_dl
    def photo_dl(learn, records, bs=None):
        if any(Path(f).name == bad for f in records.image): raise RuntimeError('the decoder gave up')
        return real_dl(learn, records, bs)
    monkeypatch.setattr(A, 'photo_dl', photo_dl)
    a = analyse(run, tmp_path, device='cpu', progress=False, bs=4)
    t = a.table.set_index(a.table.file.map(lambda f: Path(f).name))
    assert t.loc[bad, 'status'] == 'skipped' and 'the decoder gave up' in t.loc[bad, 'problem']
    assert (t.drop(index=bad).status == 'analysed').all() and len(a.views) == 3

def test_bad_input_is_named(run, tmp_path):
    r = drnb('analyse', str(tmp_path), str(tmp_path))
    assert r.returncode == 2 and f'{tmp_path}: not a saved run' in r.stderr, r.stderr
    r = drnb('analyse', str(run), str(tmp_path))
    assert r.returncode == 2 and f'{tmp_path}: no files found' in r.stderr, r.stderr
    (tmp_path/'a.png').write_bytes(b'')
    r = drnb('analyse', str(run), str(tmp_path), '--methods', 'gradcam,gradcamm', '--out', str(tmp_path/'out'))
    assert r.returncode == 2 and "unknown attribution method 'gradcamm'" in r.stderr, r.stderr
    assert not (tmp_path/'out').exists()                      # nothing was started
    r = drnb('analyse', str(run), str(tmp_path/'a.png'), '--out', str(tmp_path/'out'))
    assert r.returncode == 1 and 'skipped: ' in r.stdout and 'a.png' in r.stdout, r.stdout + r.stderr   # no photograph graded

@pytest.mark.browser
def test_the_report_renders_offline_in_chromium(run, tmp_path):
    pw = pytest.importorskip('playwright.sync_api')
    chromium = shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(chromium).exists(): pytest.skip("Debian's chromium is needed (apt-get install chromium)")
    folder = tmp_path/'photos'; folder.mkdir()
    recs = resolve_dataset('synthetic:tiny')
    for p in recs.image[:3]: shutil.copy(p, folder)
    bad_files(folder, Path(recs.image.iloc[0]))
    a = analyse(run, folder, methods=['gradcam', 'saliency'], out=tmp_path/'report', device='cpu', progress=False)
    args = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        try:
            page = b.new_page(viewport={'width': 1200, 'height': 900})
            errors, requests = [], []
            page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
            page.on('pageerror', lambda e: errors.append(str(e)))
            page.on('requestfailed', lambda r: errors.append(f'failed: {r.url}'))
            page.on('request', lambda r: requests.append(r.url))
            page.goto(a.html.resolve().as_uri()); page.wait_for_load_state('load')
            n_img = page.evaluate("document.images.length")
            broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            text = page.inner_text('body')
            rows = page.evaluate("document.querySelectorAll('table.photos tbody tr').length")
            page.screenshot(path=str(tmp_path/'report.png'), full_page=True)
        finally: b.close()
    assert n_img == 4*3, n_img                                  # 4 graded photographs: view, Grad-CAM, saliency
    assert not broken, f"pictures that did not load: {broken}"
    assert not errors, f"console errors: {errors}"
    assert all(u.startswith('file://') for u in requests), [u for u in requests if not u.startswith('file://')]   # offline
    assert rows == 6 and NOT_CLINICAL in text and 'not a fundus photograph?' in text and 'skipped:' in text
