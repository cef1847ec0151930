"The experiment template end to end through papermill: injected parameters reach metrics.json, with figures, numbers and the recipe."
import json
from pathlib import Path
import pytest
from drnb import runner as ex

BASE = dict(dataset='synthetic:tiny', backbone='tf_efficientnet_lite0', pretrained=True, image_size=64, epochs=1, batch_size=8,
            max_train=16, n_heatmaps=2, seed=3)

@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
    "The baseline and Quellec's base net (a regression head), with the same recipe: both froze their pretrained body before the Method protocol."
    out = tmp_path_factory.mktemp('runs')
    rows = {m: ex.run_experiment(ex.TEMPLATE, {k: str(v) for k, v in {**BASE, 'method': m}.items()}, out) for m in ('baseline', 'mining')}
    return {m: (r, out/r['run']) for m, r in rows.items()}

def test_train_eval_template_writes_metrics_with_its_parameters(two_runs):
    row, d = two_runs['baseline']
    assert row['status'] == 'ok', row['error']
    m = json.loads((d/'metrics.json').read_text())
    for k in ('method', 'dataset', 'image_size', 'epochs', 'seed', 'batch_size'): assert m['params'][k] == {**BASE, 'method': 'baseline'}[k]
    assert m['metrics']['n'] == m['metrics']['test_images'] > 0
    assert -1 <= m['metrics']['kappa'] <= 1 and 0 <= m['metrics']['referable_auc'] <= 1
    assert m['versions']['torch'] and m['device']['type'] in ('cpu', 'cuda') and m['wall_seconds'] > 0
    for f in ('notebook.ipynb', 'confusion_roc.png', 'batch.png', 'heatmaps.png', 'model.pth', 'run.json'): assert (d/f).stat().st_size > 0, f
    assert m['heatmap_error'] is None

def test_template_draws_heatmaps_for_a_regression_head(two_runs):
    "Quellec's base net regresses the grade (one output): the heatmaps attribute that output, not P(referable), and are drawn."
    row, d = two_runs['mining']
    assert row['status'] == 'ok', row['error']
    assert json.loads((d/'metrics.json').read_text())['heatmap_error'] is None
    assert (d/'heatmaps.png').stat().st_size > 0

def test_two_methods_record_the_same_recipe_and_no_frozen_pretrained_body(two_runs):
    "The fair recipe: the same backbone, weights, view, augmentation, images and budget in every method's metrics.json; nothing frozen."
    recipes = {m: json.loads((d/'metrics.json').read_text())['recipe'] for m, (_, d) in two_runs.items()}
    assert recipes['baseline'] == recipes['mining'], recipes
    r = recipes['baseline']
    assert r['pretrained'] is True and r['train_images'] == 16 and r['image_size'] == 64
    assert r['frozen_parameters_at_start'] == 0 and r['frozen_parameters_after_fit'] == 0
    assert r['supervision'] == dict(targets=['grade'], lesion_label_images=0, mask_fraction=None, lesion_source=None), r['supervision']

def test_nbdev_clean_keeps_the_parameters_tag(tmp_path):
    "`nbdev-clean` with this project's config must leave papermill's `parameters` tag on every template and tutorial."
    import shutil, subprocess, sys
    root = Path(__file__).resolve().parent.parent
    nbs = [ex.TEMPLATE, root/'nbs'/'experiments'/'heatmaps.ipynb', *sorted((root/'nbs'/'tutorials').glob('*.ipynb'))]
    copies = []
    for i, nb in enumerate(nbs):
        assert ex.template_params(nb), f"{nb.name}: no cell tagged 'parameters'"
        copies.append(tmp_path/f'{i}_{nb.name}'); shutil.copy(nb, copies[-1])
    clean = Path(sys.executable).parent/'nbdev-clean'
    for c in copies: subprocess.run([str(clean), '--fname', str(c)], cwd=root, check=True)
    for c, nb in zip(copies, nbs): assert ex.template_params(c) == ex.template_params(nb), f"nbdev-clean dropped the parameters of {nb.name}"
