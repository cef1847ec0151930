"The documentation site builds offline; every exported notebook has a page with its API and figures; pages render in Chromium."
import importlib, re, sys, shutil
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import build_docs  # noqa: E402

def exported_notebooks():
    "(notebook, module name) for every notebook with a `#| default_exp`."
    out = []
    for p in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        nb = nbformat.read(p, as_version=4)
        for c in nb.cells:
            m = re.search(r'#\|\s*default_exp\s+(\S+)', c.source) if c.cell_type == 'code' else None
            if m: out.append((p, nb, m.group(1))); break
    return out

def n_figures(nb): return sum(bool({'image/png', 'image/jpeg'} & set(o.get('data', {}))) for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))

@pytest.fixture(scope='module')
def site():
    build_docs.build_site()
    return build_docs.SITE

def test_readme_is_generated_from_index_and_opens_with_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert text == build_docs.readme_text(), "README.md is stale: run `make docs` (it is generated from nbs/index.ipynb)"
    head = text[:1500]
    assert 'make demo' in head and 'make test' in head

def test_every_exported_notebook_has_a_page_with_its_api_and_figures(site):
    nbs = exported_notebooks()
    assert nbs, "no exported notebooks found"
    assert (site/'index.html').is_file() and (site/'search.html').is_file() and (site/'searchindex.js').is_file()
    for p, nb, modname in nbs:
        page = site/f'{p.stem}.html'
        assert page.is_file(), f"no page for {p.name}"
        html = page.read_text()
        mod = importlib.import_module(f'drnb.{modname}')
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not name.isupper():   # functions and classes get a show_doc heading
                assert re.search(rf'(?:<h[2-4][^>]*>|<p class="rubric"[^>]*>)(?:<[^>]+>)*{re.escape(name)}(?:<|\s)', html), f"{p.name}: no show_doc for {name}"
            else: assert name in html, f"{p.name}: {name} not on its page"
        imgs = len(re.findall(r'<img ', html))
        assert imgs >= n_figures(nb), f"{p.name}: {n_figures(nb)} figures in the notebook, {imgs} on its page"
        for src in re.findall(r'<img [^>]*src="([^"]+)"', html): assert (page.parent/src).is_file(), f"{page.name}: missing image {src}"

@pytest.mark.browser
@pytest.mark.parametrize('page', ['index.html', '00_core.html'])
def test_page_renders_in_chromium(site, page, tmp_path):
    pw = pytest.importorskip('playwright.sync_api')
    chromium = shutil.which('chromium') or '/usr/bin/chromium'
    assert Path(chromium).exists(), "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    args = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        pg = b.new_page(viewport={'width': 1280, 'height': 1000})
        errors = []
        pg.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        pg.on('pageerror', lambda e: errors.append(str(e)))
        pg.on('requestfailed', lambda r: errors.append(f'failed: {r.url}'))
        pg.goto((site/page).as_uri()); pg.wait_for_load_state('load')
        title = pg.title()
        h1 = pg.inner_text('h1')
        broken = pg.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        nav = pg.evaluate("Array.from(document.querySelectorAll('.sidebar-tree a')).length")
        pg.screenshot(path=str(tmp_path/'page.png'))
        b.close()
    assert 'drnb' in title and h1.strip()
    assert not broken, f"images that did not load: {broken}"
    assert nav >= 1, "no navigation links"
    assert not errors, f"console errors: {errors}"
