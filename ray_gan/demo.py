"""``ray-gan demo``: the whole pipeline on the built-in demo data, all local.

demo-data → prepare (Ray Data) → train (Ray Train, 2 workers, a time budget of five
minutes) → batch (Ray Data, a few dozen variants per style, with the training-copy and
near-duplicate gates; a contact sheet). Re-running it
continues the training (``--resume``) and completes the batch without duplicates.
When the CLI logs to a file (not ``--verbose``), the file moves into the working folder.
"""

from __future__ import annotations

import os
import time

from ray_gan import console, storage
from ray_gan.batch.job import BatchJobSpec, run_batch
from ray_gan.config import DemoConfig, PrepareConfig, TrainConfig
from ray_gan.data.demo import write_demo_data
from ray_gan.data.prepare import prepare
from ray_gan.train.trainer import train

# Training: many small steps beat fewer large ones in a short budget. On 2 CPU cores, 2
# workers × 8 images at lr 5e-4 reach every style with coherent colour in 5 minutes (~4,300
# steps), where the DCGAN paper's 2e-4 with 2 × 32 was still blobs of mixed hue at ~950 steps
# in 3 (docs/benchmarks.md, "End-to-end demo"). The step cap only bounds a fast machine.
DEMO_STEPS = 20_000
DEMO_BATCH = 8
DEMO_LR = 5e-4
VARIANTS_PER_STYLE = 32


def run_demo(workdir: str = "ray-gan-demo",
             train_seconds: float = DemoConfig.model_fields["train_seconds"].default) -> dict[str, str]:
    workdir = os.path.abspath(workdir)
    raw, dataset, model, batch = (os.path.join(workdir, p) for p in ("raw", "dataset", "model", "batch"))
    t0 = time.monotonic()
    print(f"demo: working in {workdir}")
    if console.current() is not None:
        console.current().relocate(os.path.join(workdir, "logs"))
    counts = write_demo_data(lambda key, data: storage.write_bytes(storage.join(raw, key), data), per_style=300)
    print(f"demo: wrote {sum(counts.values())} demo images in {len(counts)} styles → {raw}")
    prepare(PrepareConfig(src=raw, dst=dataset, resolution=32, val_fraction=0.1, seed=0))
    result = train(TrainConfig.from_flat(dataset=dataset, out=model, arch="dcgan", workers=2, steps=DEMO_STEPS,
                               batch_size=DEMO_BATCH, lr_g=DEMO_LR, lr_d=DEMO_LR, checkpoint_every=1000,
                               log_every=250, time_budget_s=train_seconds, g_channels=32, d_channels=32,
                               resume=True))
    # One batch output per model step: a re-run that trained further is a new job.
    batch = os.path.join(batch, f"step-{result.step:08d}")
    spec = BatchJobSpec(job_id=f"demo-step-{result.step}", model=model, styles="all",
                        variants_per_style=VARIANTS_PER_STYLE, seed_base=0, truncation=0.8, output=batch,
                        chunk_size=16, replicas=2,
                        # privacy and variety: no near-copy of a training image, no near-duplicate in a chunk
                        gates={"training_copies": {}, "near_duplicates": {}})
    res = run_batch(spec)
    paths = {
        "images": os.path.join(batch, "images"),
        "manifest": os.path.join(batch, "manifest"),
        "contact_sheet": res.report,
        "sample_grid": result.sample_grid,
        "model": model,
    }
    print(f"\ndemo: done in {console.fmt_duration(time.monotonic() - t0)}.")
    for k, v in paths.items():
        print(f"  {k:14s} {v}")
    print(f"\nNext: ray-gan verify {batch}\n"
          f"      ray-gan generate {model} --n 8 --truncation 0.7 --out {workdir}/generated\n"
          f"      ray-gan serve {model}")
    return paths
