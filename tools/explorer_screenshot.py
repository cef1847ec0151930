"""Screenshot of the heatmap explorer in JupyterLab (headless Chromium) on real idrid_boxes photographs with their boxes,
two methods side by side: writes nbs/results/explorer/explorer.png (shown in nbs/22_interpret.explorer.ipynb).

The model is an ImageNet-pretrained EfficientNet-Lite0 body (weights shipped with drnb) with an untrained 5-grade
head: the heatmaps show where ImageNet features respond, not a DR grader's evidence. The figure shows the tool.

Data: IDRiD images (Porwal et al. 2018, IEEE DataPort, CC BY 4.0) with CODRAS boxes (C. von Csefalvay 2019,
CC BY-SA 4.0), found through drnb.core.idrid_boxes_path(); nothing is copied into the project.

    python tools/explorer_screenshot.py [--images 0001.jpg 0002.jpg] [--methods gradcam saliency]
"""
import argparse, sys, tempfile
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT/'nbs'/'results'/'explorer'
sys.path.insert(0, str(ROOT/'tests'))
import test_explorer_browser as T   # the JupyterLab + Chromium helpers of the browser test

SETUP = """import warnings; warnings.filterwarnings('ignore')
import torch
from drnb.data.formats import read_idrid_boxes
from drnb.models.backbones import backbone_classifier, backbone_stats
from drnb.interpret.explorer import explore
torch.manual_seed(0)
net = backbone_classifier('tf_efficientnet_lite0', 5, pretrained=True).eval()
recs = read_idrid_boxes()
recs = recs[recs.image.map(lambda p: p.split('/')[-1]).isin({images!r})].reset_index(drop=True)"""
APP = """app = explore({{'EfficientNet-Lite0 (ImageNet body, untrained head)': net}}, recs, methods={methods!r}, size=512,
              stats=backbone_stats('tf_efficientnet_lite0'), threshold=0.6, alpha=0.45, dpi=90)
app"""

def main(images, methods, out=HERE/'explorer.png'):
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        T.write_notebook(root/'explorer.ipynb', SETUP.format(images=list(images)), APP.format(methods=tuple(methods)))
        with T.jupyterlab(root) as (url, token), sync_playwright() as p:
            b = T.launch(p)
            try:
                page = b.new_page(viewport={'width': 1500, 'height': 1200})
                T.open_and_run_all(page, url, token, 'explorer.ipynb', 600)
                for btn in page.locator('.jp-Notification-Toast button:text-is("No")').all(): btn.click()
                errs = T.error_outputs(page)
                if errs: raise RuntimeError(f"error output: {errs}")
                page.locator('.drnb-explorer').screenshot(path=str(out))
            finally: b.close()
    print(f"wrote {out.relative_to(ROOT)}")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--images', nargs='+', default=['0001.jpg', '0002.jpg', '0003.jpg'])
    ap.add_argument('--methods', nargs='+', default=['gradcam', 'integrated_gradients'])
    a = ap.parse_args()
    main(a.images, a.methods)
