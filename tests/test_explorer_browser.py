"""The heatmap explorer in a real browser: JupyterLab on 127.0.0.1 (random free port, a token, --allow-root,
--no-browser) opens a small notebook that calls `explore(...)` on an untrained ResNet-18 and three 'tiny' synthetic
images; headless Chromium (Playwright, Debian's chromium) runs all cells, changes the methods and the image slider,
and checks that the rendered panel changes and no error output appears. The server is shut down in a finally.

The helpers are reused by tools/explorer_screenshot.py for the docs screenshot on a real photograph."""
import os, shutil, socket, subprocess, sys, time, secrets, urllib.request
from contextlib import contextmanager
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']

SETUP = """import warnings; warnings.filterwarnings('ignore')
import torch
from drnb.synth import synthetic_dataset
from drnb.models.backbones import backbone_classifier
from drnb.interpret.explorer import explore
torch.manual_seed(0); torch.set_num_threads(1)
net = backbone_classifier('resnet18', 5).eval()
records = synthetic_dataset('tiny', verbose=False).iloc[:3]"""
APP = "app = explore(net, records, methods=('saliency',), size=128, threshold=0.5)\napp"

def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def write_notebook(path:Path, *sources):
    "A notebook of code cells `sources` (python3 kernel)."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources],
                                  metadata={'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}})
    nbformat.write(nb, path)
    return path

@contextmanager
def jupyterlab(root:Path, timeout:float=120):
    "A JupyterLab server on `root` (127.0.0.1, free port, token, --allow-root); yields its base URL and token; always shut down."
    port,token = free_port(),secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root/'.cfg'), JUPYTER_RUNTIME_DIR=str(root/'.rt'),
               JUPYTERLAB_WORKSPACES_DIR=str(root/'.ws'), JUPYTER_PLATFORM_DIRS='1', PYTHONWARNINGS='ignore')
    if (ROOT/'settings.ini').exists(): env.setdefault('DRNB_SETTINGS', str(ROOT/'settings.ini'))
    jupyter = Path(sys.executable).parent/'jupyter'
    cmd = [str(jupyter) if jupyter.exists() else 'jupyter', 'lab', '--allow-root', '--no-browser', '--ip', '127.0.0.1',
           '--port', str(port), f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
           '--ServerApp.port_retries=0', '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
    log = open(root/'lab.log', 'w')
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None: raise RuntimeError(f"JupyterLab exited ({proc.returncode}):\n{(root/'lab.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2); break
            except OSError: pass
            if time.time() - t0 > timeout: raise TimeoutError(f"JupyterLab did not answer in {timeout} s:\n{(root/'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, token
    finally:
        proc.terminate()
        try: proc.wait(15)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()

def panel_src(page)->str:
    return page.evaluate("() => { const i = document.querySelector('.drnb-panel'); return i && i.complete && i.naturalWidth > 0 ? i.src : ''; }")

def wait_new_panel(page, old:str, timeout:float=180)->str:
    "Wait until the explorer's panel image shows something other than `old` (and has loaded); return its src."
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = panel_src(page)
        if s and s != old and page.inner_text('.drnb-status').strip() == 'ready': return s
        page.wait_for_timeout(250)
    raise TimeoutError(f"the explorer's panel did not change in {timeout} s")

def open_and_run_all(page, url:str, token:str, name:str, timeout:float=240):
    "Open notebook `name` in JupyterLab, wait for its kernel, run all cells (menu Run > Run All Cells), wait for the panel."
    page.goto(f'{url}/lab/tree/{name}?token={token}')
    page.wait_for_selector('.jp-Notebook', timeout=timeout*1000)
    t0 = time.time()
    while time.time() - t0 < timeout:   # JupyterLab may ask which kernel to start: take the notebook's (python3)
        if page.locator('.jp-Dialog:has-text("Select Kernel")').count():
            page.click('.jp-Dialog button.jp-mod-accept'); page.wait_for_timeout(500); continue
        if page.locator('.jp-StatusBar-TextItem:has-text("Idle")').count() and page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count(): break
        page.wait_for_timeout(250)
    else: raise TimeoutError(f"the kernel of {name} did not start in {timeout} s")
    for b in page.locator('.jp-Notification-Toast button:text-is("No")').all(): b.click()   # Jupyter news: no
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    return wait_new_panel(page, '', timeout)

def error_outputs(page)->list:
    "Text of every error or stderr output in the notebook, and of the explorer's error list."
    errs = page.eval_on_selector_all('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
                                     '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]', 'els => els.map(e => e.innerText)')
    return errs + [t for t in page.eval_on_selector_all('.drnb-errors', 'els => els.map(e => e.innerText)') if t.strip()]

def launch(p):
    if not Path(CHROMIUM).exists(): pytest.skip("Debian's chromium is needed (apt-get install chromium)")
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

@pytest.mark.browser
def test_explorer_in_jupyterlab(tmp_path):
    pw = pytest.importorskip('playwright.sync_api')
    write_notebook(tmp_path/'explorer.ipynb', SETUP, APP)
    t0 = time.time()
    with jupyterlab(tmp_path) as (url, token), pw.sync_playwright() as p:
        b = launch(p)
        try:
            page = b.new_page(viewport={'width': 1400, 'height': 1100})
            page_errors = []
            page.on('pageerror', lambda e: page_errors.append(str(e)))
            s0 = open_and_run_all(page, url, token, 'explorer.ipynb')
            panel = page.locator('.drnb-panel')
            shot0 = panel.screenshot(path=str(tmp_path/'0.png'))
            # another method: choose Grad-CAM in the methods list
            page.select_option('.drnb-methods select', ['gradcam'])
            s1 = wait_new_panel(page, s0)
            shot1 = panel.screenshot(path=str(tmp_path/'1.png'))
            # another image: the slider's handle takes arrow keys
            page.focus('.drnb-image .noUi-handle'); page.keyboard.press('ArrowRight')
            s2 = wait_new_panel(page, s1)
            shot2 = panel.screenshot(path=str(tmp_path/'2.png'))
            name = page.inner_text('.widget-label:has-text("/3:")')
            errs = error_outputs(page)
        finally: b.close()
    print(f"browser test: {time.time() - t0:.0f} s")
    assert shot0 != shot1, "the panel did not change with the method"
    assert shot1 != shot2, "the panel did not change with the image"
    assert name.startswith('2/3: 00001'), name
    assert not errs, f"error output in the notebook: {errs}"
    assert not page_errors, f"JavaScript errors: {page_errors}"
