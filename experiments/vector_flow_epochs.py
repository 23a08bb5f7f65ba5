"""How the vector MAF's AUROC and NLL move with the learning rate and the number of epochs (the table in
genood/models/vector_flow/README.md): a plain training loop over genood's VectorMAF (Adam, weight decay 1e-6,
batch 100, batch-norm statistics from the whole training split before each check), one thread.

    python experiments/vector_flow_epochs.py wdbc --lrs 1e-4 1e-3 --epochs 25 50 100 200 400
    python experiments/vector_flow_epochs.py 6_cardio --root /path/to/adbench --lrs 1e-4 1e-3 --epochs 25 50 100 200
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from genood.data.tabular import TabularDataModule
    from genood.models.vector_flow import VectorMAF

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset")
    p.add_argument("--root", default=None, help="folder of ADBench .npz files (not needed for wine, wdbc, digits)")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3])
    p.add_argument("--epochs", type=int, nargs="+", default=[25, 50, 100, 200])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    dm = TabularDataModule(args.dataset, root=args.root, seed=args.seed)
    dm.setup()
    x_train, x_test = torch.from_numpy(dm.X_train), torch.from_numpy(dm.X_test)
    print("| lr | epochs | train NLL | test-normal NLL | AUROC (nll) | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for lr in args.lrs:
        torch.manual_seed(args.seed)
        net = VectorMAF(x_train.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-6)
        start, n = time.perf_counter(), len(x_train)
        for epoch in range(1, max(args.epochs) + 1):
            net.train()
            perm = torch.randperm(n)
            for i in range(0, n, 100):
                loss = -net.log_prob(x_train[perm[i:i + 100]]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch in args.epochs:
                net.set_batch_norm_stats(x_train)
                net.eval()
                with torch.no_grad():
                    train_nll = -net.log_prob(x_train).mean().item()
                    lp = net.log_prob(x_test).double().numpy()
                normal = lp[dm.y_test == 0]
                auroc = roc_auc_score(dm.y_test, -np.nan_to_num(lp, nan=-1e30, neginf=-1e30))
                print(f"| {lr:g} | {epoch} | {train_nll:.2f} | {-normal[np.isfinite(normal)].mean():.2f} | "
                      f"{100 * auroc:.1f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
