"The rehearsal of the prepared GPU check (`make gpu DRY=1`, tools/gpu_check.py --dry): it finishes and writes every file."
import json, os, subprocess, sys
from pathlib import Path
import pandas as pd, pytest

ROOT = Path(__file__).resolve().parent.parent
STAMP = {'device', 'torch', 'cuda', 'time'}

@pytest.fixture(scope='module')
def dry(tmp_path_factory):
    "The output folder of one dry run (one torch thread, CPU only)."
    out = tmp_path_factory.mktemp('gpu_dry')
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    r = subprocess.run([sys.executable, 'tools/gpu_check.py', '--dry', '--out', str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out

@pytest.mark.timeout(300)
def test_writes_every_file(dry):
    assert sorted(p.name for p in dry.iterdir()) == ['bench.csv', 'cells.json', 'tests.csv', 'zoomin_512.csv']

@pytest.mark.timeout(300)
def test_rows_are_stamped_and_ok(dry):
    for f in ('tests.csv', 'bench.csv', 'zoomin_512.csv'):
        df = pd.read_csv(dry/f)
        assert STAMP <= set(df.columns) and len(df) and df.device.str.startswith('cpu').all(), f
    t = pd.read_csv(dry/'tests.csv').iloc[0]
    assert t.exit_code == 0 and t.failed == 0 and t.errors == 0 and t.skipped > 0    # no GPU: the cuda tests skip
    b = pd.read_csv(dry/'bench.csv')
    assert (b.status == 'ok').all(), b[b.status != 'ok'].to_dict('records')
    from drnb.methods import method_names
    assert {f'method {m}' for m in method_names()} <= set(b['item']) and {'explorer', 'attribution', 'train'} <= set(b.what)
    z = pd.read_csv(dry/'zoomin_512.csv').iloc[0]
    assert z.status == 'ok' and z.method == 'zoomin' and 'coverage@4' in z.index, z.to_dict()

@pytest.mark.timeout(300)
def test_cells(dry):
    cells = json.loads((dry/'cells.json').read_text())
    assert set(cells) == {'10_models.zoomin', '11_models.clpi', '12_models.collab', '13_models.mining', '20_interpret.attribution'}
    for nb, c in cells.items(): assert c['status'] == 'ok' and STAMP <= set(c), (nb, c)
    assert cells['20_interpret.attribution']['all_known_answers']
