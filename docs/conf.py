# Sphinx configuration of drnb's documentation site, built offline by `make docs` (tools/build_docs.py).
# Why Sphinx + myst-nb: both are maintained PyPI packages that install and run with no network; myst-nb renders
# notebooks with their stored outputs (figures, tables, nbdev's show_doc markdown) without re-executing them, and
# Sphinx ships client-side search. Quarto (nbdev-docs) stays configured for machines that have it.
project = 'drnb'
author = 'drnb developers'
copyright = 'drnb developers; IDRiD images CC BY 4.0 (Porwal et al. 2018); CODRAS boxes CC BY-SA 4.0 (C. von Csefalvay 2019)'
extensions = ['myst_nb']
nb_execution_mode = 'off'              # notebooks carry their outputs; the docs never retrain anything
nb_render_markdown_format = 'myst'     # show_doc output is markdown
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type', 'misc.highlighting_failure']
exclude_patterns = ['_build', '**.ipynb_checkpoints']
html_theme = 'furo'
html_title = 'drnb'
# Formulas render offline: MathJax 2 from the jupyter-server-mathjax package, copied into _static by build_docs.py.
from pathlib import Path as _Path
html_static_path = [str(_Path(__file__).parent/'_src'/'_static')]
mathjax_path = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full'
html_css_files = ['drnb.css']
html_show_sourcelink = False
# jupyter-server-mathjax ships the STIX-Web fonts only (not MathJax's TeX fonts): tell MathJax 2 to use them.
# Browsers block web fonts on file:// pages, so formulas use the reader's own fonts (no web font is loaded).
mathjax2_config = {'jax': ['input/TeX', 'output/HTML-CSS'], 'messageStyle': 'none',
                   # Sphinx marks <body> tex2jax_ignore and each formula with class `math`
                   'tex2jax': {'processClass': 'math|output_area|tex2jax_process', 'ignoreClass': 'tex2jax_ignore|mathjax_ignore'},
                   'HTML-CSS': {'availableFonts': [], 'preferredFont': None, 'webFont': None, 'imageFont': None}}
