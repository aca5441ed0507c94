"""Text methods on the built-in transformer (newsgroups/minilm): ours against captum and against the floor of
model passes each method cannot avoid, side by side in one run (a benchmark, not a test).

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

Targets (issue 21): IG <= 1.0x captum; every method <= 1.3x its floor. Prints a table and one JSON line;
``--check`` exits 1 when a target is missed. ``python bench/transformers.py --quick`` (2 posts, 1 repeat).
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--lime-samples", type=int, default=500)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.repeats = 2, 1

    import torch
    from captum.attr import LayerIntegratedGradients

    adapter = scenarios.load_model("newsgroups", "minilm", "headers").adapter
    module = adapter.torch_module()
    test = scenarios.load_data("newsgroups", "headers")["test"]
    ig = TextIGParams(steps=args.steps)
    rows: dict[str, list[tuple[float, float, float | None]]] = {}

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

    print(f"\nnewsgroups/minilm, {args.docs} posts, torch threads {torch.get_num_threads()}, "
          f"IG {args.steps} steps, LIME {args.lime_samples} samples (medians over posts)")
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
                failed.append(f"{method} {ours / peer:.2f}x captum")
        if ours / floor > 1.3:
            failed.append(f"{method} {ours / floor:.2f}x its floor")
        summary[method] = entry
        print(line)
    print(json.dumps({"bench": "transformers", "docs": args.docs, "summary": summary, "missed": failed}))
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
