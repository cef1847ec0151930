"Every published number is a config: each config under nbs/results checks on every grid point and runs its first point on synthetic:tiny through the runner."
import ast, json
from pathlib import Path
import pytest, torch
from drnb.core import idrid_boxes_path
from drnb.runner import check_config, read_config, run_config, config_runs
from drnb.methods import load_run

RESULTS = Path(__file__).resolve().parent.parent/'nbs'/'results'
CONFIGS = sorted(RESULTS.glob('*/config.yaml'))
ALL_CONFIGS = sorted(RESULTS.glob('*/*.yaml'))     # config.yaml and the studies beside it (replica.yaml, ...)

def test_every_experiment_folder_has_a_config():
    benches_only = {'block', 'explorer', 'analyse', 'gpu'}    # benchmark figures (make bench, make gpu) and screenshots, not experiments
    folders = {p.name for p in RESULTS.iterdir() if p.is_dir()} - benches_only
    assert folders == {c.parent.name for c in CONFIGS}, sorted(folders ^ {c.parent.name for c in CONFIGS})

def test_no_file_under_results_builds_its_own_dataloaders_or_learner():
    "Results come from the runner: no script beside them with its own pipeline."
    for f in RESULTS.rglob('*.py'):
        for n in ast.walk(ast.parse(f.read_text())):
            name = getattr(n, 'id', None) or getattr(n, 'attr', None) or ''
            assert not (isinstance(n, (ast.Name, ast.Attribute)) and ('learner' in name.lower() or 'dataloaders' in name.lower())), f"{f} uses {name}"

def _needs_idrid(c): return any(r.get('dataset') == 'idrid_boxes' for r in config_runs(read_config(c)))

@pytest.mark.parametrize('config', ALL_CONFIGS, ids=lambda c: f'{c.parent.name}/{c.name}')
def test_config_checks_on_every_grid_point(config):
    if _needs_idrid(config) and idrid_boxes_path(required=False) is None: pytest.skip('idrid_boxes is not here (settings.ini: idrid_boxes_path)')
    assert check_config(config) > 0

@pytest.mark.parametrize('config', CONFIGS, ids=lambda c: c.parent.name)
def test_config_first_run_on_tiny_data_and_its_saved_model(config, tmp_path):
    res = run_config(config, out=tmp_path/'runs', smoke=True, progress=False)
    assert len(res) == 1 and (res.status == 'ok').all(), res.error.tolist()
    assert not (config.parent/'results.csv').is_relative_to(tmp_path)
    d = tmp_path/'runs'/res.run[0]
    if (d/'test_probs.pth').exists():                     # a training run: its saved model predicts what it evaluated
        from drnb.runner import resolve_dataset
        recs = resolve_dataset('synthetic:tiny'); test = recs[recs.split == 'test']
        learn = load_run(d, 'cpu')
        p, _ = learn.method.predict(learn, learn.dls.test_dl(test.to_dict('records'), with_labels=True))
        torch.testing.assert_close(p, torch.load(d/'test_probs.pth', weights_only=True)['probs'], atol=1e-5, rtol=0)
