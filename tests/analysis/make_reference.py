"""NumPy side of the analysis tests: fixed feature sets and the numbers `ardkit analyze` must
compute from them (linear CKA, similarity-structure correlation, relative shift, agreement),
written here from their definitions with NumPy only.

Writes OUT/features.pt (tensors a, b, c, rotated, a_moved, logits_a, logits_b) and
OUT/expected.json."""
import json
import sys
from pathlib import Path

import numpy as np
import torch


def linear_cka(x, y):
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def structure(x, y):
    def cos(m):
        u = m / np.linalg.norm(m, axis=1, keepdims=True)
        return u @ u.T
    i, j = np.triu_indices(len(x), 1)
    return np.corrcoef(cos(x)[i, j], cos(y)[i, j])[0, 1]


def shift(clean, adv):
    return np.mean(np.linalg.norm(adv - clean, axis=1) / np.linalg.norm(clean, axis=1))


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40, 12))
    b = a @ rng.normal(size=(12, 7)) + 0.5 * rng.normal(size=(40, 7))  # related, other width
    c = rng.normal(size=(40, 9))                                          # unrelated
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    rotated = 3.0 * a @ q                                               # CKA must give 1
    logits_a = rng.normal(size=(40, 5))
    logits_b = logits_a + rng.normal(scale=0.8, size=(40, 5))
    a_moved = a + 0.1 * rng.normal(size=a.shape)
    tensors = {k: torch.tensor(v) for k, v in dict(a=a, b=b, c=c, rotated=rotated, a_moved=a_moved,
                                                  logits_a=logits_a, logits_b=logits_b).items()}
    torch.save(tensors, out / "features.pt")
    expected = {
        "cka_ab": linear_cka(a, b), "cka_ac": linear_cka(a, c), "cka_rotated": linear_cka(a, rotated),
        "structure_ab": structure(a, b), "structure_ac": structure(a, c),
        "shift": shift(a, a_moved),
        "agreement": float(np.mean(logits_a.argmax(1) == logits_b.argmax(1))),
    }
    (out / "expected.json").write_text(json.dumps({k: float(v) for k, v in expected.items()}))
    print(f"analysis reference written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
