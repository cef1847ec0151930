"The experiment template end to end through papermill: injected parameters reach metrics.json, with figures and numbers."
import json
from pathlib import Path
from drnb import runner as ex

def test_train_eval_template_writes_metrics_with_its_parameters(tmp_path):
    params = dict(method='baseline', dataset='synthetic:tiny', image_size=64, epochs=1, seed=3, batch_size=8, n_heatmaps=2)
    row = ex.run_experiment(ex.TEMPLATE, {k: str(v) for k, v in params.items()}, tmp_path)
    d = tmp_path/row['run']
    assert row['status'] == 'ok', row['error']
    m = json.loads((d/'metrics.json').read_text())
    for k in ('method', 'dataset', 'image_size', 'epochs', 'seed', 'batch_size'): assert m['params'][k] == params[k]
    assert m['metrics']['n'] == m['metrics']['test_images'] > 0
    assert -1 <= m['metrics']['kappa'] <= 1 and 0 <= m['metrics']['referable_auc'] <= 1
    assert m['versions']['torch'] and m['device']['type'] in ('cpu', 'cuda') and m['wall_seconds'] > 0
    for f in ('notebook.ipynb', 'confusion_roc.png', 'batch.png', 'heatmaps.png'): assert (d/f).stat().st_size > 0, f
    assert m['heatmap_error'] is None

def test_template_draws_heatmaps_for_a_regression_head(tmp_path):
    "Quellec's base net regresses the grade (one output): the heatmaps attribute that output, not P(referable), and are drawn."
    row = ex.run_experiment(ex.TEMPLATE, dict(method='mining', dataset='synthetic:tiny', image_size=64, epochs=1, n_heatmaps=2), tmp_path)
    assert row['status'] == 'ok', row['error']
    d = tmp_path/row['run']
    assert json.loads((d/'metrics.json').read_text())['heatmap_error'] is None
    assert (d/'heatmaps.png').stat().st_size > 0

def test_nbdev_clean_keeps_the_parameters_tag(tmp_path):
    "`nbdev-clean` with this project's config must leave papermill's `parameters` tag on every template and tutorial."
    import shutil, subprocess, sys, nbformat
    root = Path(__file__).resolve().parent.parent
    nbs = [ex.TEMPLATE, *sorted((root/'nbs'/'tutorials').glob('*.ipynb'))]
    copies = []
    for i, nb in enumerate(nbs):
        assert ex.template_params(nb), f"{nb.name}: no cell tagged 'parameters'"
        copies.append(tmp_path/f'{i}_{nb.name}'); shutil.copy(nb, copies[-1])
    clean = Path(sys.executable).parent/'nbdev-clean'
    for c in copies: subprocess.run([str(clean), '--fname', str(c)], cwd=root, check=True)
    for c, nb in zip(copies, nbs): assert ex.template_params(c) == ex.template_params(nb), f"nbdev-clean dropped the parameters of {nb.name}"

def test_two_methods_record_the_same_recipe_and_no_frozen_pretrained_body(tmp_path):
    "The fair recipe: the same backbone, weights, view, augmentation, images and budget in every method's metrics.json; nothing frozen."
    base = dict(dataset='synthetic:tiny', backbone='tf_efficientnet_lite0', pretrained=True, image_size=64, epochs=1, batch_size=8,
                max_train=16, n_heatmaps=1)
    recipes = {}
    for method in ('baseline', 'mining'):      # both froze their pretrained body for the whole run before the Method protocol
        row = ex.run_experiment(ex.TEMPLATE, {**base, 'method': method}, tmp_path)
        assert row['status'] == 'ok', row['error']
        recipes[method] = json.loads((tmp_path/row['run']/'metrics.json').read_text())['recipe']
    assert recipes['baseline'] == recipes['mining'], recipes
    r = recipes['baseline']
    assert r['pretrained'] is True and r['train_images'] == 16 and r['image_size'] == 64
    assert r['frozen_parameters_at_start'] == 0 and r['frozen_parameters_after_fit'] == 0
