"""The built-in transformers (newsgroups/minilm, mnist/vit): ours against captum and against the floor of
model passes each method cannot avoid, side by side in one run (a benchmark, not a test).

``--model minilm`` (the default), ``--model vit`` or ``--model all``.

minilm: text methods.
On the first ``--docs`` test posts of newsgroups ("headers"), for the predicted class, after one unrecorded
warm-up per contender; each contender runs ``--repeats`` times per post (the median is kept), uncached
(a fresh store per call):

- ``integrated_gradients``: ours (``core.text.token_methods.explain_integrated_gradients``, ``--steps``
  Gauss-Legendre points, path points in batches of 16) against captum's ``LayerIntegratedGradients`` on the
  same module, layer (``get_input_embeddings()``), baseline (pad tokens), steps, rule and batch. Floor: the
  same number of forward + backward passes of the module on the path batch, nothing else.
- ``gradient_x_embedding``: ours against its floor, one forward + backward pass.
- ``attention`` / ``attention_rollout``: ours against one forward pass returning the attention maps.
- ``occlusion``: ours against the floor of one ``predict_proba`` on the post and its n copies without one word.
- ``lime``: ours with ``--lime-samples`` samples (the CPU default: 500) against one ``predict_proba`` on the
  same perturbed texts (the model calls alone).

vit: image methods on the Vision Transformer of ``mnist`` (4 blocks of 17 tokens: [CLS] and 4x4 patches of 7x7
pixels), on the first ``--images`` (64) test images, for the predicted class, each method through
``explain_images`` with its default parameters (the page's: image context from the training split), ``--batch-size``
(256) rows per pass, a fresh store per call; after one unrecorded warm-up per contender, the median of ``--repeats``
rounds, each running every contender once (interleaved; a call under 50 ms is repeated within its sample). Floors
(``bench/attributions.py``'s ``Floor``: the same passes on the benchmark's images tiled to one full batch, on the
device already): gradient 1 forward + backward per image; SmoothGrad ``samples`` (50); Integrated Gradients
``steps`` (50) plus 2 forward passes (the completeness check); occlusion ``positions + 1`` forward passes; attention
rollout one forward pass keeping the attention maps (hooks on ``attention_modules()``); Grad-CAM one forward +
backward down to its default layer (the tokens entering the last block's attention, ``blocks.3.norm1``). IG also
against captum's ``IntegratedGradients`` with the same steps, rule, black baseline and rows per pass
(``internal_batch_size``), numpy in and out like ours; ``agree`` is max |ours - captum| / max |captum|.

Targets (issue 21): IG <= 1.0x captum; every method <= 1.3x its floor. Prints a table and one JSON line per model;
``--check`` exits 1 when a target is missed. ``python bench/transformers.py --quick`` (2 posts or 16 images,
1 repeat).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from core import scenarios  # noqa: E402
from core.store import ArtifactStore  # noqa: E402
from core.text.lime_text import LimeParams, explain_lime, sample_masks  # noqa: E402
from core.text.text_methods import explain_gradient_embedding, explain_occlusion, token_owners  # noqa: E402
from core.text.token_methods import (  # noqa: E402
    AttentionParams,
    TextIGParams,
    baseline_input,
    explain_attention,
    explain_integrated_gradients,
)
from core.text.words import WordDocument  # noqa: E402


def fresh() -> ArtifactStore:
    return ArtifactStore(tempfile.mkdtemp(prefix="bench-transformers-"))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up, unrecorded
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def interleaved(fns: dict, repeats: int, min_time: float = 0.05) -> dict[str, float]:
    """Median seconds per call per contender: one unrecorded warm-up each, then ``repeats`` rounds of one sample of
    each (a busy moment on a shared machine hits every contender alike); a sample repeats a fast call until it
    lasts ``min_time`` seconds and counts the time per call (bench/attributions.py's ``--min-time-ms``)."""
    loops = {}
    for name, fn in fns.items():
        started = time.perf_counter()
        fn()
        loops[name] = max(1, int(min_time / max(time.perf_counter() - started, 1e-6)))
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            runs[name].append((time.perf_counter() - started) / loops[name])
    return {name: statistics.median(values) for name, values in runs.items()}


Rows = dict[str, list[tuple[float, float, float | None]]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("minilm", "vit", "all"), default="minilm")
    ap.add_argument("--docs", type=int, default=3)
    ap.add_argument("--images", type=int, default=64, help="vit: test images explained together (default 64)")
    ap.add_argument("--batch-size", type=int, default=256, help="vit: rows per pass, ours, floor and captum")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=32, help="minilm: IG steps (vit: IG's default, 50)")
    ap.add_argument("--lime-samples", type=int, default=500)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.images, args.repeats = 2, 16, 1
    failed: list[str] = []
    if args.model in ("minilm", "all"):
        failed += report("newsgroups/minilm", f"{args.docs} posts", bench_minilm(args),
                         f"IG {args.steps} steps, LIME {args.lime_samples} samples (medians over posts)",
                         {"docs": args.docs})
    if args.model in ("vit", "all"):
        rows, agree = bench_vit(args)
        failed += report("mnist/vit", f"{args.images} test images", rows,
                         f"{args.batch_size} rows per pass, IG 50 steps (medians of {args.repeats} runs); "
                         f"IG agrees with captum to {agree:.1e} of its max", {"images": args.images, "ig_agree": agree})
    return 1 if args.check and failed else 0


def bench_minilm(args: argparse.Namespace) -> Rows:
    import torch
    from captum.attr import LayerIntegratedGradients

    adapter = scenarios.load_model("newsgroups", "minilm", "headers").adapter
    module = adapter.torch_module()
    test = scenarios.load_data("newsgroups", "headers")["test"]
    ig = TextIGParams(steps=args.steps)
    rows: Rows = {}

    def add(method: str, ours: float, floor: float, peer: float | None = None) -> None:
        rows.setdefault(method, []).append((ours, floor, peer))

    for i in range(args.docs):
        text = str(test.x[i])
        doc = WordDocument.parse(text)
        target = int(adapter.predict_proba(np.array([text], dtype=object))[0].argmax())
        packed = adapter.to_tensor([text])
        base = baseline_input(adapter, packed, token_owners(adapter, doc))
        path_batch = packed.expand(ig.batch_size, *packed.shape[1:])

        def path_floor() -> None:  # steps forward + backward passes, in the same batches, nothing else
            for start in range(0, args.steps, ig.batch_size):
                n = min(ig.batch_size, args.steps - start)
                emb = adapter.input_embeddings()(path_batch[:n, 0]).detach().requires_grad_(True)
                with torch.enable_grad():
                    handle = adapter.input_embeddings().register_forward_hook(lambda _m, _i, _o, e=emb: e)
                    try:
                        out = torch.softmax(module(path_batch[:n]), dim=1)[:, target].sum()
                    finally:
                        handle.remove()
                    torch.autograd.grad(out, emb)

        lig = LayerIntegratedGradients(lambda x: torch.softmax(module(x), dim=1), adapter.input_embeddings())
        ours = timed(lambda: explain_integrated_gradients(adapter, text, target, ig, store=fresh()), args.repeats)
        peer = timed(lambda: lig.attribute(packed, baselines=base, target=target, n_steps=args.steps,
                                           method=ig.rule, internal_batch_size=ig.batch_size), args.repeats)
        add("integrated_gradients", ours, timed(path_floor, args.repeats), peer)

        def one_backward() -> None:
            emb = adapter.input_embeddings()(packed[:, 0]).detach().requires_grad_(True)
            with torch.enable_grad():
                handle = adapter.input_embeddings().register_forward_hook(lambda _m, _i, _o: emb)
                try:
                    out = torch.softmax(module(packed), dim=1)[0, target]
                finally:
                    handle.remove()
                torch.autograd.grad(out, emb)

        add("gradient_x_embedding", timed(lambda: explain_gradient_embedding(adapter, text, target, store=fresh()),
                                          args.repeats), timed(one_backward, args.repeats))

        def attention_floor() -> None:
            with torch.inference_mode():
                module(packed, output_attentions=True)

        floor = timed(attention_floor, args.repeats)
        add("attention", timed(lambda: explain_attention(adapter, text, target, AttentionParams(), store=fresh()),
                               args.repeats), floor)
        add("attention_rollout", timed(lambda: explain_attention(adapter, text, target, rollout=True, store=fresh()),
                                       args.repeats), floor)

        d = doc.n_words
        active = np.ones((d + 1, d), dtype=bool)
        active[np.arange(1, d + 1), np.arange(d)] = False
        occluded = np.array(doc.texts(active), dtype=object)
        add("occlusion", timed(lambda: explain_occlusion(adapter, text, target, store=fresh()), 1),
            timed(lambda: adapter.predict_proba(occluded), 1))

        params = LimeParams(num_samples=args.lime_samples, seed=i)
        perturbed = np.array(doc.texts(sample_masks(d, args.lime_samples, i)), dtype=object)
        add("lime", timed(lambda: explain_lime(adapter, text, params, target, store=fresh()), 1),
            timed(lambda: adapter.predict_proba(perturbed), 1))
        print(f"post {i}: {d} words, {int(packed.shape[-1])} tokens", file=sys.stderr)

    return rows


def bench_vit(args: argparse.Namespace) -> tuple[Rows, float]:
    """Image methods on mnist/vit: (rows as in :func:`report`, IG's max |ours - captum| / max |captum|)."""
    import torch
    from captum.attr import IntegratedGradients

    from bench.attributions import Floor, passes_per_image
    from core.attribution import explain_images, image_context
    from core.attribution.run import resolve_params

    adapter = scenarios.load_model("mnist", "vit").adapter
    module = adapter.torch_module()
    data = scenarios.load_data("mnist")
    x = np.asarray(data["test"].x[:args.images], dtype=np.float32)
    target = adapter.predict(x)
    context = image_context(data["train"])
    device = str(adapter.device)
    floor = Floor(module, x, target, args.batch_size, device)
    n, b = len(x), args.batch_size
    rows: Rows = {}
    agree = float("nan")

    def ours(method: str):
        return lambda: explain_images(adapter, x, target, method, batch_size=b, context=context, store=fresh())

    def rollout_floor() -> None:  # forward passes keeping every block's attention map, nothing else
        kept: list = []
        handles = [m.register_forward_hook(lambda _m, _i, out: kept.append(out)) for m in module.attention_modules()]
        try:
            floor.forward_only(n)
        finally:
            for handle in handles:
                handle.remove()

    ours("gradient")()  # the first passes after loading pay for allocations: not any method's cost
    for method in ("gradient", "smoothgrad", "integrated_gradients", "occlusion", "attention_rollout", "grad_cam"):
        params = resolve_params(method, None, adapter, x.shape[1:])
        if method == "attention_rollout":
            floor_fn = rollout_floor
        else:
            layer = dict(module.named_modules())[params.layer] if method == "grad_cam" else None
            passes = passes_per_image(method, params, x.shape[1:], n)
            floor_fn = (lambda passes=passes, layer=layer: floor.run(passes, n, layer))
        contenders = {"ours": ours(method), "floor": floor_fn}
        if method == "integrated_gradients":
            ig = IntegratedGradients(module)
            xt, tt = torch.as_tensor(x).to(device), torch.as_tensor(target).to(device)

            def captum_ig() -> np.ndarray:
                return ig.attribute(xt, baselines=torch.zeros_like(xt), target=tt, n_steps=params.steps,
                                    method=params.rule, internal_batch_size=b).detach().cpu().numpy()

            theirs = captum_ig()
            agree = float(np.abs(ours(method)().maps - theirs).max() / np.abs(theirs).max())
            contenders["captum"] = captum_ig
        medians = interleaved(contenders, args.repeats)
        rows[method] = [(medians["ours"], medians["floor"], medians.get("captum"))]
        per_image = "1f" if method == "attention_rollout" else passes_per_image(method, params, x.shape[1:], n)
        print(f"{method}: floor {per_image} per image", file=sys.stderr)
    return rows, agree


def report(model: str, inputs: str, rows: Rows, settings: str, extra: dict) -> list[str]:
    """Print the table and the JSON line of one model; the missed targets."""
    import torch

    print(f"\n{model}, {inputs}, torch threads {torch.get_num_threads()}, {settings}")
    print(f"{'method':<22} {'ours s':>8} {'floor s':>8} {'ours/floor':>10} {'captum s':>9} {'ours/captum':>11}")
    summary, failed = {}, []
    for method, values in rows.items():
        ours = statistics.median(v[0] for v in values)
        floor = statistics.median(v[1] for v in values)
        peer = statistics.median(v[2] for v in values) if values[0][2] is not None else None
        entry = {"ours_s": round(ours, 4), "floor_s": round(floor, 4), "ours_over_floor": round(ours / floor, 3)}
        line = f"{method:<22} {ours:8.3f} {floor:8.3f} {ours / floor:10.2f}"
        if peer is not None:
            entry.update(captum_s=round(peer, 4), ours_over_captum=round(ours / peer, 3))
            line += f" {peer:9.3f} {ours / peer:11.2f}"
            if ours / peer > 1.0:
                failed.append(f"{model} {method} {ours / peer:.2f}x captum")
        if ours / floor > 1.3:
            failed.append(f"{model} {method} {ours / floor:.2f}x its floor")
        summary[method] = entry
        print(line)
    print(json.dumps({"bench": "transformers", "model": model, **extra, "summary": summary, "missed": failed}))
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
