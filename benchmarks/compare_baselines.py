"""The numbers of lesson 04's closing table: PCA, VAE and DCGAN on the same faces and the same held-out people.

Splits the faces by identity (90 % / 10 %, seed 0, as lessons 01, 02 and 04 do), fits PCA on the 90 %, loads a
VAE run trained on the same 90 % and a DCGAN run, then prints the held-out reconstruction error (mean squared
error per value on the [-1, 1] scale) of the mean face, PCA with k components and the VAE, and for samples of each
model the sliced Wasserstein distance to the held-out faces (64x64 and 16x16 levels) and the mean pairwise
MS-SSIM. Writes the side-by-side picture and the reconstructions as PNGs.

    .venv/bin/python -m facekit train dcgan --data ../shared/celeba --filters 32 --steps 2000 --heldout 0.1 \
        --ema-half-life 0 --run runs/celeba
    .venv/bin/python benchmarks/compare_baselines.py --data ../shared/celeba --vae runs/celeba_vae --dcgan runs/celeba

The DCGAN trains on the same 90 % and, like lesson 03's, without a moving average (lesson 04's DCGAN row). The
DCGAN row recorded in lesson 04 predates both: it came from the kit's DCGAN before the shared training engine,
trained on all the faces, the held-out people included.

When the --vae folder holds no run yet, the VAE is trained there first on the 90 % (width 32, batch 64,
--vae-steps steps: about 12 minutes for 2,500 steps on 2 cores).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from facekit import data, metrics, progress  # noqa: E402
from facekit.models import dcgan, pca, vae  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="CelebA folder (default: facekit's default source)")
    parser.add_argument("--vae", type=Path, required=True, help="VAE run folder trained on the 90 %% split")
    parser.add_argument("--dcgan", type=Path, required=True, help="DCGAN run folder")
    parser.add_argument("--vae-steps", type=int, default=2500, help="steps if the VAE must be trained first")
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("--count", type=int, default=1024, help="samples per model for SWD and MS-SSIM")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_baselines"))
    arguments = parser.parse_args()

    faces = data.prepare(arguments.data, resolution=64, progress=False)
    training, heldout = faces.split_by_identity((0.9, 0.1), seed=0)
    targets = data.to_float(heldout.images)
    print(f"{len(faces)} faces from {faces.source}: {len(training)} training, {len(heldout)} held out")
    started = time.perf_counter()
    eigenfaces = pca.fit(training.images, components=arguments.components, seed=0)
    print(f"PCA: {arguments.components} components in {time.perf_counter() - started:.1f} s")
    if not (arguments.vae / "run.json").exists():
        vae.train(training.images, arguments.vae, vae.VAEConfig(filters=32, batch_size=64, steps=arguments.vae_steps,
                                                                 snapshot_every=100, seed=0))
    autoencoder = vae.load_vae(arguments.vae)
    generator = dcgan.load_generator(arguments.dcgan)
    latent_dim = autoencoder.encoder.outputs[0].shape[-1]

    errors = {"mean face": np.mean((targets - eigenfaces.mean) ** 2)}
    for k in (10, 50, latent_dim, 200, arguments.components):
        errors[f"PCA k = {k}"] = np.mean((eigenfaces.reconstruct(heldout.images, k) - targets) ** 2)
    errors[f"VAE ({latent_dim} latent numbers)"] = np.mean((autoencoder.reconstruct(heldout.images) - targets) ** 2)
    print("\nheld-out reconstruction, mean squared error per value")
    for name, error in errors.items():
        print(f"  {name:28}{error:.4f}")

    count = min(arguments.count, len(heldout), len(training))
    rng = np.random.default_rng(0)
    samples = {
        "real (training)": training.images[:count],
        "PCA": progress.to_uint8(eigenfaces.sample(count, seed=0)),
        "VAE": progress.to_uint8(autoencoder.sample(rng.standard_normal((count, latent_dim)).astype(np.float32))),
        "DCGAN": progress.to_uint8(generator(rng.standard_normal((count, generator.input_shape[-1])).astype(
            np.float32), training=False)),
    }
    print(f"\nsamples against {count} held-out faces\n  {'':18}{'SWD 64x64':>10}{'SWD 16x16':>10}{'MS-SSIM':>9}")
    for name, images in samples.items():
        swd = metrics.sliced_wasserstein_distance(heldout.images[:count], images, seed=0)
        similarity = metrics.mean_pairwise_ms_ssim(images, pairs=1000, seed=0)
        print(f"  {name:18}{swd['swd_64']:10.1f}{swd['swd_16']:10.1f}{similarity:9.3f}")

    rows = [progress.label_image(progress.image_grid(images[:12], columns=12), name)
            for name, images in {"real (held out)": heldout.images, **samples}.items() if name != "real (training)"]
    progress.save_grid(np.concatenate(rows)[None], arguments.out / "samples.png")
    rebuilt = [targets[:10], eigenfaces.reconstruct(heldout.images[:10], latent_dim),
               eigenfaces.reconstruct(heldout.images[:10]), autoencoder.reconstruct(heldout.images[:10])]
    progress.save_grid(np.concatenate(rebuilt), arguments.out / "reconstructions.png", columns=10)
    print(f"\nwrote {arguments.out / 'samples.png'} and {arguments.out / 'reconstructions.png'} "
          f"(rows: faces, PCA k = {latent_dim}, PCA k = {arguments.components}, VAE)")


if __name__ == "__main__":
    main()
