"""Build drnb's documentation offline: README.md from nbs/index.ipynb, and a Sphinx + myst-nb site in docs/_site.

Notebooks are processed as nbdev does for its own site: cells flagged `#| hide`, `#| export`, `#| exporti` or
`#| default_exp` are left out (the API is shown by `show_doc` cells), other `#|` directive lines are removed,
`#| echo: false` keeps only the output. Stored outputs are rendered; nothing is executed.
"""
import re, shutil, subprocess, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NBS, DOCS = ROOT/'nbs', ROOT/'docs'
SRC, SITE = DOCS/'_src', DOCS/'_site'
HIDDEN = {'hide', 'export', 'exporti', 'default_exp', 'hide_input_and_output'}

def directives(src:str):
    "The nbdev `#|` directives of a code cell's source, as {name: value}."
    out = {}
    for line in src.splitlines():
        m = re.match(r'\s*#\|\s*([\w-]+):?\s*(.*)', line)
        if m: out[m.group(1)] = m.group(2).strip()
    return out

DETAILS = re.compile(r'^([ \t]*)<details><summary>(.*?)</summary>(.*?)</details>', re.M | re.S)

def open_details(md:str)->str:
    "Blank lines inside `<details>` blocks, so that MyST parses the answer as markdown (maths, code) instead of raw HTML."
    return DETAILS.sub(lambda m: f"{m[1]}<details><summary>{m[2]}</summary>\n\n{m[1]}{m[3].strip()}\n\n{m[1]}</details>", md)

DISPLAY_MATH = re.compile(r'^([ \t]*)(\$\$.+?\$\$[.,;:]?)[ \t]*$', re.M)

def own_paragraph_math(md:str)->str:
    "A `$$...$$` line inside a paragraph made a paragraph of its own: MyST reads display maths only there."
    return DISPLAY_MATH.sub(lambda m: f"\n{m[1]}{m[2]}\n", md)

def doc_cells(nb):
    "The cells of `nb` as the documentation shows them."
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = own_paragraph_math(open_details(c.source))
        if c.cell_type != 'code': yield c; continue
        d = directives(c.source)
        if d.keys() & HIDDEN: continue
        c.source = '\n'.join(l for l in c.source.splitlines() if not re.match(r'\s*#\|', l)).strip()
        only_show_doc = all(re.match(r'show_doc\(', l) for l in c.source.splitlines() if l.strip())
        if d.get('echo') == 'false' or 'hide_input' in d or only_show_doc: c.metadata['tags'] = c.metadata.get('tags', []) + ['remove-input']
        if not c.source and not c.get('outputs'): continue
        for o in c.get('outputs', []):  # show_doc markdown opens with a rule, which docutils cannot place in an output
            md = o.get('data', {}).get('text/markdown')
            if md: o['data']['text/markdown'] = re.sub(r'^\s*---\s*\n', '', md)
        yield c

def processed(path:Path):
    nb = nbformat.read(path, as_version=4)
    nb.cells = list(doc_cells(nb))
    return nb

def pages():
    "Notebooks of the site, in navigation order: home, tutorials, then the numbered API notebooks."
    tuts = sorted((NBS/'tutorials').glob('*.ipynb'))
    api = sorted(p for p in NBS.glob('[0-9]*.ipynb'))
    return NBS/'index.ipynb', tuts, api

def module_of(nb):
    "The module a notebook exports (its `#| default_exp`), or None."
    for c in nb.cells:
        m = re.search(r'#\|\s*default_exp\s+(\S+)', c.source) if c.cell_type == 'code' else None
        if m: return m.group(1)
    return None

def module_index(modname:str)->str:
    "A markdown table of every name a module exports: kind and first line of its docstring."
    import importlib, inspect
    mod = importlib.import_module(f'drnb.{modname}')
    rows = []
    for name in getattr(mod, '__all__', []):
        obj = getattr(mod, name)
        kind = 'class' if inspect.isclass(obj) else 'function' if callable(obj) else type(obj).__name__
        doc = (inspect.getdoc(obj) or '').split('\n')[0] if kind in ('class', 'function') else ''
        if not doc and kind not in ('class', 'function'):
            r = repr(obj); doc = f"`{r[:70]}{'…' if len(r) > 70 else ''}`".replace('|', '\\|')
        rows.append(f"| `{name}` | {kind} | {doc.replace('|', '/')} |")
    return f"## Module index: `drnb.{modname}`\n\n| name | kind | summary |\n|---|---|---|\n" + '\n'.join(rows)

def title_of(nb):
    for c in nb.cells:
        if c.cell_type == 'markdown':
            m = re.search(r'^#\s+(.+)$', c.source, re.M)
            if m: return m.group(1).strip()
    return None

# ---- README ---------------------------------------------------------------------------------------------
def readme_text():
    "README.md as generated from nbs/index.ipynb: its markdown and code cells, outputs as text where they are text."
    nb = processed(NBS/'index.ipynb')
    parts = ['<!-- generated from nbs/index.ipynb by tools/build_docs.py: edit the notebook, not this file -->']
    for c in nb.cells:
        if c.cell_type == 'markdown': parts.append(c.source.strip())
        elif c.cell_type == 'code':
            if 'remove-input' not in c.metadata.get('tags', []): parts.append(f"```python\n{c.source}\n```")
            for o in c.get('outputs', []):
                txt = o.get('text') or (o.get('data', {}).get('text/markdown')) or (o.get('data', {}).get('text/plain'))
                if txt: parts.append(txt if 'text/markdown' in o.get('data', {}) else f"```\n{txt.rstrip()}\n```")
    return '\n\n'.join(parts) + '\n'

def build_readme():
    (ROOT/'README.md').write_text(readme_text())
    print('README.md written from nbs/index.ipynb')

# ---- site -----------------------------------------------------------------------------------------------
def build_site(clean:bool=True):
    home, tuts, api = pages()
    if SRC.exists(): shutil.rmtree(SRC)
    (SRC/'tutorials').mkdir(parents=True)
    static = SRC/'_static'
    import jupyter_server_mathjax
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent/'static', static/'mathjax')
    shutil.copy(DOCS/'drnb.css', static/'drnb.css')
    def put(p, rel):
        nb = processed(p)
        mod = module_of(nbformat.read(p, as_version=4))
        if mod: nb.cells.append(nbformat.v4.new_markdown_cell(module_index(mod)))
        nbformat.write(nb, SRC/rel)
        return rel[:-len('.ipynb')]
    tut_docs = [put(p, f'tutorials/{p.name}') for p in tuts]
    api_docs = [put(p, p.name) for p in api]
    nb = processed(home)
    toc = lambda cap, docs: f"```{{toctree}}\n:caption: {cap}\n:maxdepth: 1\n:hidden:\n\n" + '\n'.join(docs) + "\n```"
    extra = [toc('Tutorials', tut_docs)] if tut_docs else []
    extra.append(toc('API', api_docs))
    nb.cells.append(nbformat.v4.new_markdown_cell('\n\n'.join(extra)))
    nbformat.write(nb, SRC/'index.ipynb')
    if clean and SITE.exists(): shutil.rmtree(SITE)
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-c', str(DOCS), str(SRC), str(SITE)]
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode: sys.exit(f"sphinx-build failed ({r.returncode})")
    print(f"site built: {SITE.relative_to(ROOT)}/index.html ({len(tut_docs)} tutorials, {len(api_docs)} API pages); "
          f"to browse it: python -m http.server -d {SITE.relative_to(ROOT)} 8000, then open http://127.0.0.1:8000")

if __name__ == '__main__':
    build_readme()
    if '--readme-only' not in sys.argv: build_site()
