"""Screenshot of the `drnb analyse` report in headless Chromium, on three real idrid_boxes photographs, a truncated JPEG,
a text file and a photograph-like picture that is no fundus photograph: writes nbs/results/analyse/report.jpg (shown in
tutorial 9, nbs/tutorials/09_your_own_photographs.ipynb).

Without --run, a baseline is trained for one epoch on synthetic:tiny at 128 px through the experiment template (about
half a minute): its grades mean nothing, and the report's header says so. The figure shows the report, not a model.

Data: IDRiD images (Porwal et al. 2018, IEEE DataPort, CC BY 4.0), found through drnb.core.idrid_boxes_path() and
copied only into a temporary folder; nothing is copied into the project.

    python tools/analyse_screenshot.py [--run RUN] [--images 0001.jpg 0002.jpg 0003.jpg] [--out JPG]
"""
import argparse, shutil, tempfile
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT/'nbs'/'results'/'analyse'/'report.jpg'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']

def tiny_run(folder:Path)->Path:
    "A baseline trained for one epoch on synthetic:tiny at 128 px, through the template."
    from drnb.runner import TEMPLATE, run_experiment
    row = run_experiment(TEMPLATE, dict(method='baseline', dataset='synthetic:tiny', image_size=128, epochs=1, n_heatmaps=1), folder)
    if row['status'] != 'ok': raise RuntimeError(f"the run failed: {row['error']}")
    return folder/row['run']

def photo_folder(folder:Path, images:list)->Path:
    "The real photographs named (copied), a truncated copy of the first, a text file and `non_fundus_picture()`."
    from drnb.core import idrid_boxes_path
    from drnb.interpret.analyse import non_fundus_picture
    src = idrid_boxes_path()/'images'
    folder.mkdir(parents=True, exist_ok=True)
    for n in images: shutil.copy(src/n, folder/n)
    data = (src/images[0]).read_bytes()
    (folder/'cut_short.jpg').write_bytes(data[:len(data)//2])
    (folder/'notes.txt').write_text('taken on Monday, left eye first')
    non_fundus_picture().save(folder/'holiday.jpg', quality=90)
    return folder

def main(run=None, images=('0001.jpg', '0002.jpg', '0003.jpg'), out=OUT):
    from playwright.sync_api import sync_playwright
    from drnb.interpret.analyse import analyse
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        run = Path(run) if run else tiny_run(d/'runs')
        a = analyse(run, photo_folder(d/'my_photographs', list(images)), out=d/'report', device='cpu', progress=False)
        print(a)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which('chromium') or '/usr/bin/chromium', args=CHROMIUM_ARGS)
            try:
                page = b.new_page(viewport={'width': 1150, 'height': 900})
                errors = []
                page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
                page.on('requestfailed', lambda r: errors.append(f'failed: {r.url}'))
                page.goto(a.html.resolve().as_uri()); page.wait_for_load_state('load')
                broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
                if errors or broken: raise RuntimeError(f"console errors {errors}, pictures not loaded {broken}")
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True, type='jpeg', quality=85)
            finally: b.close()
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', default=None, help='a run folder (default: train a tiny one)')
    ap.add_argument('--images', nargs='+', default=['0001.jpg', '0002.jpg', '0003.jpg'])
    ap.add_argument('--out', type=Path, default=OUT)
    a = ap.parse_args()
    main(a.run, a.images, a.out)
