"""The PyTorch side of the export round trip: every file ardkit exported (NAME.export.pt) must
torch.load as a state dict that loads strictly into the reference definition and gives the same
logits as the original weights."""
import sys
from pathlib import Path

import torch

from reference_models import CASES


def main(out):
    failures, checked = [], 0
    for name, (_, _, _, build) in CASES.items():
        exported = out / f"{name}.export.pt"
        if not exported.exists():
            failures.append(f"{name}: {exported} was not written by the C++ test")
            continue
        state = torch.load(exported)
        model = build()
        model.load_state_dict(state, strict=True)
        model.eval()
        io = torch.load(out / f"{name}.io.pt")
        with torch.no_grad():
            diff = (model(io["input"]) - io["logits"]).abs().max().item()
        checked += 1
        print(f"{name:28s} max |logit diff| {diff:.2e}")
        if diff > 1e-4:
            failures.append(f"{name}: logits differ by {diff}")
    for f in failures:
        print("FAIL", f)
    print(f"{checked} exported state dicts loaded into PyTorch")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
