"`drnb train` under torchrun: two CPU processes (gloo) train one model on halves of the data and end with equal replicas."
import json, os, subprocess, sys, shutil
from pathlib import Path
import pytest

def test_two_process_cpu_training_gives_equal_replicas(tmp_path):
    torchrun = Path(sys.executable).parent/'torchrun'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'DRNB_DEVICE': 'cpu'}
    cmd = [str(torchrun), '--nproc_per_node', '2', '--master_port', '29531', '-m', 'drnb.cli', 'train',
           '-p', 'dataset', 'synthetic:tiny', '-p', 'image_size', '64', '-p', 'epochs', '1', '-p', 'batch_size', '8', '--out', str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in range(2)]
    assert [x['world_size'] for x in ranks] == [2, 2]
    assert ranks[0]['checksum'] == ranks[1]['checksum']                     # same model on both ranks
    for x in ranks:                                 # each rank ran about half of what one process runs alone
        assert 0 < x['train_batches'] <= (x['single_process_batches'] + 1)//2
    assert (tmp_path/'model.pth').exists()
