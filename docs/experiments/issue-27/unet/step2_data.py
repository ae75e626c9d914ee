"""Generated data with the cnn-s teacher: seeds 0..N-1 via make_dataset (exp/data-cnn-s), plus a held-out
set of 200 other seeds (10_000_000 + i) with images, hard labels and teacher probabilities (exp/heldout-gen.pt)."""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa
import torch, torch.nn.functional as F
from gan_partseg.fewshot import FewShotSegmenter
from gan_partseg.generated_data import generate_latents, make_dataset
from gan_partseg.io import tensor_to_uint8, uint8_to_tensor

ROOT = Path(__file__).resolve().parents[1]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
teacher = str(ROOT / "exp" / "teacher-cnn-s")
t0 = time.time()
make_dataset(teacher, ROOT / "exp" / "data-cnn-s", n=N, shard_size=250, progress=False)
t_make = time.time() - t0
print("make_dataset", N, round(t_make, 1), "s", flush=True)
t1 = time.time()
seg = FewShotSegmenter.from_pretrained(teacher).eval()
seeds = [10_000_000 + i for i in range(200)]
imgs, labs, probs = [], [], []
with torch.no_grad():
    for i in range(0, 200, 25):
        w, noise = generate_latents(seg.generator, seeds[i:i + 25])
        out = seg.segment_latents(w, noise)
        imgs.append(uint8_to_tensor(tensor_to_uint8(out.images)));  labs.append(out.labels); probs.append(F.softmax(out.logits.float(), 1).half())
torch.save({"seeds": seeds, "images": torch.cat(imgs), "labels": torch.cat(labs), "probs": torch.cat(probs)},
           ROOT / "exp" / "heldout-gen.pt")
t_ho = time.time() - t1
json.dump({"n": N, "make_dataset_s": t_make, "heldout_gen_s": t_ho}, open(ROOT / "exp" / f"step2_data_{N}.json", "w"))
print("heldout", round(t_ho, 1), "s")
