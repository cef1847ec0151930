"The experiment runner: papermill parameters, sweeps that survive failures and skip finished runs, resumable training, bad parameters."
import json, subprocess, sys
from pathlib import Path
import nbformat, pytest, torch
from nbformat.v4 import new_notebook, new_code_cell
from drnb import runner as ex
from drnb.methods import fit_resumable
from drnb.report import leaderboard, leaderboard_markdown

def toy_template(path):
    "A template that records its parameters and fails when asked to."
    nb = new_notebook(cells=[
        new_code_cell("method = 'baseline'\nseed = 0\nepochs = 1\nlr = 0.01\nfail = False\nout_dir = '.'", metadata={'tags': ['parameters']}),
        new_code_cell("import json, pathlib\nif fail: raise RuntimeError(f'run with seed {seed} asked to fail')\n"
                      "json.dump({'metrics': {'kappa': 0.5 + seed/10}, 'params': dict(seed=seed, epochs=epochs, lr=lr)}, "
                      "open(pathlib.Path(out_dir)/'metrics.json', 'w'))")])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    nbformat.write(nb, path); return path

@pytest.fixture
def template(tmp_path): return toy_template(tmp_path/'toy.ipynb')

def test_run_injects_parameters_and_writes_metrics(template, tmp_path):
    row = ex.run_experiment(template, {'seed': '3', 'lr': '0.5'}, tmp_path/'runs')
    d = tmp_path/'runs'/row['run']
    m = json.loads((d/'metrics.json').read_text())
    assert m['params'] == {'seed': 3, 'epochs': 1, 'lr': 0.5}          # converted to the template's types
    assert row['status'] == 'ok' and row['kappa'] == pytest.approx(0.8)
    assert (d/'notebook.ipynb').exists() and json.loads((d/'params.json').read_text()) == {'method': 'baseline', 'seed': 3, 'epochs': 1, 'lr': 0.5, 'fail': False}

def test_sweep_keeps_results_when_a_run_fails_and_skips_finished_runs(template, tmp_path):
    out = tmp_path/'sw'
    res = ex.sweep(template, {'seed': [0, 1, 2]}, out, base={}, progress=False)
    assert (res.status == 'ok').all()
    # a second sweep over the same folder: seed 3 fails, the three finished runs are not executed again
    stamps = {p: p.stat().st_mtime_ns for p in out.glob('*/notebook.ipynb')}
    res = ex.sweep(template, {'seed': [0, 1, 2, 3], 'fail': [False]}, out, progress=False)
    res2 = ex.sweep(template, {'seed': [4], 'fail': [True]}, out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    table = ex.collect_results(out)
    assert (out/'results.csv').exists() and len(table) == 5
    failed = table[table.status == 'failed']
    assert len(failed) == 1 and 'asked to fail' in failed.error.iloc[0]
    assert (out/failed.run.iloc[0]/'notebook.ipynb').exists()      # what it had written stays
    assert sorted(table.kappa.dropna()) == pytest.approx([0.5, 0.6, 0.7, 0.8])

@pytest.mark.parametrize('params,msg', [({'method': 'nope'}, "unknown method 'nope'"), ({'epochs': -1}, "'epochs' = -1 must not be negative"),
                                        ({'batchsize': 3}, "no parameter(s) ['batchsize']"), ({'epochs': 'many'}, "expected int")])
def test_bad_parameters_fail_before_anything_runs(template, tmp_path, params, msg):
    with pytest.raises(ex.ExperimentError) as e: ex.run_experiment(template, params, tmp_path/'runs')
    assert msg in str(e.value)
    assert not (tmp_path/'runs').exists()

def test_missing_dataset_is_named():
    with pytest.raises(ex.ExperimentError, match='does-not-exist'): ex.resolve_dataset('/tmp/does-not-exist', check_only=True)
    with pytest.raises(ex.ExperimentError, match="unknown synthetic preset 'huge'; known: bench"): ex.resolve_dataset('synthetic:huge', check_only=True)

def test_cli_sweep_yaml_and_leaderboard(template, tmp_path):
    y = tmp_path/'s.yaml'
    y.write_text(f"template: {template}\nout: {tmp_path/'cli'}\nbase: {{epochs: 2}}\ngrid: {{seed: [0, 1]}}\n")
    r = subprocess.run([sys.executable, '-m', 'drnb.cli', 'sweep', '--yaml', str(y)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, '-m', 'drnb.cli', 'leaderboard', str(tmp_path/'cli'/'results.csv'), '--metrics', 'kappa'], capture_output=True, text=True)
    assert '0.550 ± 0.071 (2)' in r.stdout, r.stdout
    r = subprocess.run([sys.executable, '-m', 'drnb.cli', 'run', str(template), '-p', 'epochs', '-3'], capture_output=True, text=True)
    assert r.returncode == 2 and 'must not be negative' in r.stderr

def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.callback.core import Callback
    from torch.utils.data import TensorDataset
    from fastai.data.load import DataLoader
    torch.manual_seed(0)
    x = torch.randn(64, 4); y = (x[:, 0] > 0).long()
    def learner():
        dls = DataLoaders(DataLoader(TensorDataset(x, y), bs=16, shuffle=True), DataLoader(TensorDataset(x, y), bs=16))
        return Learner(dls, torch.nn.Linear(4, 2), loss_func=torch.nn.CrossEntropyLoss())
    class Interrupt(Callback):
        order = 99
        def after_epoch(self):
            if self.epoch == 1: raise KeyboardInterrupt
    ck = tmp_path/'ck.pth'
    l1 = learner()
    with pytest.raises(KeyboardInterrupt): fit_resumable(l1, 4, ck, lr=0.1, cbs=Interrupt())
    saved = torch.load(ck, weights_only=True)
    assert saved['epoch'] == 2
    class Count(Callback):
        def before_fit(self): self.epochs = []
        def after_batch(self):   # epochs that really trained (skipped ones run no batch)
            if self.training and self.epoch not in self.epochs: self.epochs.append(self.epoch)
    l2, cnt = learner(), Count()
    # the weights it starts from are the checkpoint's
    class FirstWeights(Callback):
        def before_fit(self): self.w = self.learn.model.weight.detach().clone()
    fw = FirstWeights()
    start = fit_resumable(l2, 4, ck, lr=0.1, cbs=[cnt, fw])
    assert start == 2 and cnt.epochs == [2, 3]
    assert torch.equal(fw.w, saved['model']['weight'])
    assert torch.load(ck, weights_only=True)['epoch'] == 4

def test_leaderboard_markdown_single_seed_and_missing_metric():
    "One seed shows no made-up spread; a metric a dataset does not report shows as missing, not nan."
    import pandas as pd
    df = pd.DataFrame(dict(dataset=['a', 'b'], method='m', seed=0, status='ok', kappa=[0.5, float('nan')], weak_label_auc=[float('nan'), 0.8]))
    md = leaderboard_markdown(leaderboard(df, metrics=('kappa', 'weak_label_auc')))
    assert '| a | m | 0.500 (1) | – |' in md and '| b | m | – | 0.800 (1) |' in md and 'nan' not in md, md
