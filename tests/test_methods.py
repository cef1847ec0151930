"The Method protocol through the runner: a method's own parameters from the command line, saved runs that reload and predict as they evaluated."
import json, subprocess, sys
from pathlib import Path
import pytest, torch
from drnb.methods import get_method, load_run, method_names
from drnb.runner import resolve_dataset

SMALL = ['-p', 'dataset', 'synthetic:tiny', '-p', 'image_size', '64', '-p', 'epochs', '1', '-p', 'batch_size', '8',
         '-p', 'max_train', '16', '-p', 'n_heatmaps', '1']

def drnb(*args): return subprocess.run([sys.executable, '-m', 'drnb.cli', *args], capture_output=True, text=True)

def drnb_here(capsys, *args):
    "The `drnb` command in this process (no start-up cost): (exit code, stdout, stderr)."
    from drnb.cli import main
    rc = main(list(args)); out = capsys.readouterr()
    return rc, out.out, out.err

@pytest.fixture(scope='module')
def zoomin_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('runs')
    r = drnb('run', '-p', 'method', 'zoomin', '-p', 'n_crops', '8', '-p', 'zoom', '3', *SMALL, '--out', str(out))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (d,) = [p.parent for p in out.glob('*/run.json')]
    return d

@pytest.fixture(scope='module')
def zoomin_loaded(zoomin_run): return load_run(zoomin_run, 'cpu')

def test_a_method_parameter_from_the_command_line_reaches_the_run_and_the_saved_model(zoomin_run, zoomin_loaded):
    assert json.loads((zoomin_run/'params.json').read_text())['n_crops'] == 8
    info = json.loads((zoomin_run/'run.json').read_text())
    assert info['method_params']['n_crops'] == 8 and info['method_params']['zoom'] == 3
    assert json.loads((zoomin_run/'metrics.json').read_text())['params']['n_crops'] == 8
    learn = zoomin_loaded
    assert learn.model.n_crops == 8
    assert learn.model.zoom_boxes(torch.zeros(1, 3, 256, 256)).shape == (1, 8, 4)   # what the explorer draws

def test_zoom_sets_the_twin_the_model_sees(zoomin_loaded):
    recs = resolve_dataset('synthetic:tiny')
    learn = zoomin_loaded
    x, twin, _ = learn.dls.test_dl(recs[recs.split == 'test'].head(2).to_dict('records'), with_labels=True).one_batch()
    assert x.shape[-1] == 64 and twin.shape[-1] == 192           # zoom 3 in the run
    m, tr = get_method('zoomin'), recs[recs.split != 'test']
    for zoom in (2, 4):
        b = m.dataloaders(tr, 64, 'resnet18', bs=4, device='cpu', num_workers=0, zoom=zoom).one_batch()
        assert b[1].shape[-1] == 64*zoom

def test_load_run_predicts_what_the_run_evaluated(zoomin_run):
    recs = resolve_dataset('synthetic:tiny')
    learn = load_run(zoomin_run, 'cpu')                                # a fresh load: nothing predicted with it before
    p, y = learn.method.predict(learn, learn.dls.test_dl(recs[recs.split == 'test'].to_dict('records'), with_labels=True))
    ref = torch.load(zoomin_run/'test_probs.pth', weights_only=True)
    torch.testing.assert_close(p, ref['probs'], atol=1e-5, rtol=0)
    assert torch.equal(y, ref['grades'])

def test_an_unknown_or_ill_typed_method_parameter_names_the_method_and_lists_its_parameters(tmp_path, capsys):
    rc, _, err = drnb_here(capsys, 'run', '-p', 'method', 'zoomin', '-p', 'n_krops', '8', *SMALL, '--out', str(tmp_path))
    assert rc == 2 and "method 'zoomin'" in err and 'n_crops: int = 4' in err and 'stages' in err, err
    rc, _, err = drnb_here(capsys, 'run', '-p', 'method', 'clpi', '-p', 'lam', 'lots', *SMALL, '--out', str(tmp_path))
    assert rc == 2 and "parameter 'lam'" in err and 'expected float' in err, err
    assert not list(tmp_path.iterdir())                                   # nothing ran

def test_drnb_methods_lists_every_method_and_one_methods_parameters(capsys):
    rc, out, _ = drnb_here(capsys, 'methods')
    assert rc == 0 and all(f'{n}:' in out for n in method_names())
    rc, out, _ = drnb_here(capsys, 'methods', 'clpi')
    assert 'loss: str' in out and 'one of ce, nl' in out

def test_the_explorer_draws_a_zoomin_nets_own_boxes():
    "The explorer asks the model for `zoom_boxes`: a real ZoomInNet has them (it had none before)."
    from drnb.interpret.explorer import zoom_source
    from drnb.models.zoomin import ZoomInNet
    f = zoom_source(ZoomInNet('resnet18').eval())
    assert f is not None and f(torch.zeros(2, 3, 128, 128)).shape == (2, 4, 4)

def test_the_explorer_offers_a_runs_own_heatmap_and_uses_its_square(zoomin_loaded):
    from drnb.interpret.explorer import Explorer
    recs = resolve_dataset('synthetic:tiny')
    ex = Explorer(zoomin_loaded, recs.head(2), size=64)
    assert ex.methods[0] == 'zoomin_attention' and ex.square == 'pad'

def test_collab_uses_masks_on_its_mask_fraction_of_training_images_and_boxes_as_coarse_masks():
    "Zhou et al. is semi-supervised: `mask_fraction` of the training images keep their masks, the rest are grade-only; on idrid_boxes the boxes are the masks."
    from drnb.data.block import masked_indices
    from drnb.models.collab import labelled_indices
    M, recs = get_method('collab'), resolve_dataset('synthetic:tiny')
    tv = recs[recs.split != 'test']
    n = (tv.split == 'train').sum()
    for f in (0.25, 1.0):
        dls = M.dataloaders(tv, 64, 'resnet18', bs=8, seed=0, device='cpu', num_workers=0, mask_fraction=f)
        assert len(labelled_indices(dls.train_ds)) == round(f*n)
    assert len(masked_indices(dls.valid_ds)) == (tv.split == 'valid').sum()      # validation keeps every mask
    from PIL import Image
    w, h = Image.open(tv.image.iloc[0]).size
    boxed = tv.assign(masks=None, boxes=[[['EX', w//3, h//3, 2*w//3, 2*h//3]]]*len(tv))   # an idrid_boxes-like table: boxes only
    dls = M.dataloaders(boxed, 64, 'resnet18', bs=8, seed=0, device='cpu', num_workers=0, mask_fraction=1.0)   # every box counts, so any batch shows it
    x, g, m, k = dls.one_batch()
    assert k[:, 2].any() and not k[:, [0, 1, 3]].any()                           # only the boxed type counts; the others are unknown
    assert m.as_subclass(torch.Tensor)[k.as_subclass(torch.Tensor)[:, 2], 2].sum() > 0                                               # the box is a coarse mask
