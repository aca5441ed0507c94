"""Image attribution benchmark: ours vs the floor vs captum, side by side in one run (a benchmark,
not a test).

Run from the repository root (or anywhere)::

    TRUSTLENS_DATA_DIR=../shared/data python bench/attributions.py            # 5 repeats
    TRUSTLENS_DATA_DIR=../shared/data python bench/attributions.py --quick    # 3 repeats, batch 16 only

Two models: the trained MNIST CNN of the ``mnist`` scenario (1x28x28; when the MNIST data is
missing, a randomly initialised ``core.nets.image_cnn(28, 28)``, and the output says so) and a
small ResNet-style CNN for 3x32x32 defined here (stem convolution, 3 stages of 2 basic residual
blocks of ``--resnet-widths`` 8,16,32 channels with batch norm, adaptive average pooling, a
linear layer to 10 classes; random weights, batch-norm statistics set on random images, eval
mode). Images: the first MNIST test images (or
uniform noise), batch 1 and batch 16, each explained towards its predicted class. The device is
``core.device.resolve_device()`` (``TRUSTLENS_DEVICE=cpu`` forces the CPU).

Per (model, method, batch), each contender runs once unrecorded (warm-up), then ``--repeats``
timed samples, interleaved (one sample of each contender per round, so a busy moment on a shared
machine hits all of them); a sample repeats a fast call until it lasts ``--min-time-ms`` (50) and
counts the time per call. The table shows the medians (``--stat min``: the minima):

- ``ours``: the registered method's ``run`` (``core.attribution.get_method(name).run``: numpy in,
  numpy out, no disk cache) with its default parameters resolved as ``explain_images`` resolves
  them (occlusion's window / stride, Grad-CAM's layer), ``batch_size=--batch-size`` (256).
- ``floor``: the same number of passes done as one well-sized batch stream on inputs already on
  the device (the benchmark's images, tiled to one batch; targets likewise): forward+backward
  passes (gradients of the target logits) and / or forward-only passes (inference mode),
  ``--batch-size`` rows per pass.
  Rows per image (the table's ``passes/img``: ``fb`` forward+backward to the input, ``fbL``
  forward+backward down to the Grad-CAM layer only, ``f`` forward-only): gradient, gradient x
  input, Guided Backprop, LRP 1 fb (LRP's forward + backward counted as one pass); Grad-CAM 1 fbL;
  Guided Grad-CAM 1 fb + 1 fbL; SmoothGrad ``samples`` (50) fb; Integrated Gradients ``steps``
  (50) fb + 2 f (the completeness check); occlusion ``positions + 1`` f; LIME ``num_samples``
  (1000) f (one forward pass per perturbed copy of the image; the surrogate's fit is not in it).
- ``captum``: captum called with its defaults on the same settings (numpy -> tensors -> numpy
  included, like ours): Saliency, InputXGradient, GuidedBackprop, NoiseTunnel(Saliency)
  (nt_samples=50, stdevs=noise_level, default nt_samples_batch_size: all rows at once),
  IntegratedGradients (n_steps=50, gausslegendre, zero baseline, internal_batch_size=None),
  Occlusion on softmax(module) with our window / stride (perturbations_per_eval=1),
  LayerGradCam(relu_attributions=True) + LayerAttribution.interpolate on our layer, GuidedGradCam
  on the same layer (both with our bilinear upsampling so the maps can be compared), LRP on a
  deep copy with identity rules on the input normalisation and flatten, Lime on softmax(module)
  with our square superpixels as ``feature_mask``, our fill as ``baselines``,
  ``n_samples=num_samples``, ``perturbations_per_eval=--batch-size`` and lime_image's surrogate
  (``SkLearnRidge(alpha=1.0)``, weighted by lime_image's kernel on the cosine distance: captum's
  default Lasso(alpha=0.01) zeroes every weight of a probability surrogate here), in inference
  mode like ours; captum explains one image at a time and draws a new mask per sample.
- ``agree``: max |ours - captum| / max |captum| on the benchmark inputs, except SmoothGrad
  (independent noise) and LIME (independent random masks) where it is the correlation ``r=`` of
  the two maps. LRP is compared with
  ours rerun (untimed) at captum's epsilon 1e-9 (ours defaults to 1e-6, which alone moves the
  maps by ~1e-3 of their scale).

Targets (issue): every method within 1.3x of its floor at batch 16; never slower than captum's
defaults. Both are checked with a 5% noise margin (ours/floor <= 1.365 at batch 16, ours/captum
<= 1.05 everywhere). LRP is "n/a" on the ResNet (not an nn.Sequential chain; the reason is
printed). Prints one table per model, a summary line and one JSON line. Exit status 0 (a
benchmark reports, it does not fail CI) unless ``--check`` is given and a target is missed.
Run it on a GPU machine too when one is available.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Drop this file's own folder from the path (house style: a bench file may share a library's name).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from core.adapters.torch_adapter import TorchAdapter  # noqa: E402
from core.attribution import get_method, method_names, resolve_params  # noqa: E402
from core.attribution.base import ImageContext  # noqa: E402
from core.attribution.run import DEFAULT_BATCH_SIZE  # noqa: E402
from core.device import resolve_device  # noqa: E402

FLOOR_TARGET = 1.3
CAPTUM_TARGET = 1.0
MARGIN = 1.05  # noise margin on both targets
CAPTUM_LRP_EPSILON = 1e-9  # captum's EpsilonRule default (ours: LRPParams.epsilon = 1e-6)
FLOOR_BATCH = 16  # the batch the floor target applies to


# -- the ResNet-style model ----------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected when needed) identity shortcut.
    Every ReLU is its own non-inplace module (captum's Guided Backprop hooks ReLU modules)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """ResNet-style CNN for 3x32x32: stem, 3 stages of 2 basic blocks, global pooling, linear."""

    def __init__(self, widths: tuple[int, int, int] = (8, 16, 32), n_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))


def resnet_adapter(device: str, widths: tuple[int, int, int]) -> TorchAdapter:
    torch.manual_seed(0)
    module = SmallResNet(widths)
    # Batch-norm statistics from random images (a fresh net's unit statistics make its activations
    # grow block by block), and a sharper last layer so the softmax (occlusion) is not flat.
    module.train()
    with torch.no_grad():
        for _ in range(4):
            module(torch.rand(64, 3, 32, 32))
        module.fc.weight.mul_(10.0)
    module.eval()
    return TorchAdapter(module, name="resnet-3x32x32", class_names=tuple("0123456789"), input_kind="image",
                        device=device)


def mnist_model(device: str) -> tuple[TorchAdapter, np.ndarray, str]:
    """(adapter, test images, label) of the mnist scenario's CNN, or a random one without the data."""
    from core import scenarios
    from core.errors import TrustLensError

    try:
        loaded = scenarios.load_model("mnist", "cnn")
        x = scenarios.load_data("mnist")["test"].x[:FLOOR_BATCH].astype(np.float32)
        return loaded.adapter, x, f"MNIST CNN (trained, test accuracy {loaded.metrics.get('test_accuracy', '?')})"
    except TrustLensError as exc:
        from core.nets import image_cnn

        print(f"NOTE: MNIST data unavailable ({exc.message.split('(')[0].strip()}); using a RANDOMLY INITIALISED "
              "image_cnn(28, 28) on uniform-noise images instead. Set TRUSTLENS_DATA_DIR (e.g. ../shared/data).",
              flush=True)
        torch.manual_seed(0)
        adapter = TorchAdapter(image_cnn(28, 28), name="mnist-cnn-random", class_names=tuple("0123456789"),
                               input_kind="image", device=device)
        x = np.random.default_rng(0).uniform(0, 1, (FLOOR_BATCH, 1, 28, 28)).astype(np.float32)
        return adapter, x, "MNIST-shaped CNN (RANDOM weights: data missing)"


# -- timing ------------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


STAT: Callable[[list[float]], float] = statistics.median  # --stat min replaces it


def timed(fns: dict[str, Callable[[], Any]], repeats: int, device: str,
          min_time: float) -> dict[str, tuple[float, Any]]:
    """``{name: (median seconds per call, last result)}``.

    One warm-up call of each function, which also sets its number of calls per sample (enough to
    last ``min_time`` seconds, so millisecond calls are not timed one by one); then ``repeats``
    rounds that take one sample of each function in turn (interleaved, so a busy moment on a
    shared machine hits every contender rather than one; the order rotates between rounds).
    """
    results, loops = {}, {}
    for name, fn in fns.items():
        synchronize(device)
        started = time.perf_counter()
        results[name] = fn()
        synchronize(device)
        loops[name] = max(1, int(min_time / max(time.perf_counter() - started, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            fn = fns[name]
            synchronize(device)
            started = time.perf_counter()
            for _ in range(loops[name]):
                results[name] = fn()
            synchronize(device)
            times[name].append((time.perf_counter() - started) / loops[name])
    return {name: (STAT(times[name]), results[name]) for name in fns}


# -- floors -------------------------------------------------------------------------------------


class Floor:
    """The floor's two kinds of passes for one model, on an input buffer already on its device."""

    def __init__(self, module: nn.Module, images: np.ndarray, targets: np.ndarray, batch_size: int, device: str):
        # The benchmark's own images, tiled to one full batch: the passes see the same kind of data
        # as the methods (max pooling, for one, runs faster on MNIST's many equal pixels than on noise).
        idx = np.arange(batch_size) % len(images)
        self.module, self.batch_size = module, batch_size
        self.x = torch.as_tensor(images[idx]).to(device)
        self.t = torch.as_tensor(targets[idx]).to(device)

    def chunks(self, rows: int) -> list[int]:
        return [min(self.batch_size, rows - a) for a in range(0, rows, self.batch_size)]

    def forward_backward(self, rows: int, layer: nn.Module | None = None) -> None:
        """Gradients of the target logits for ``rows`` inputs, ``batch_size`` rows per pass: with
        respect to the inputs, or to ``layer``'s output (the backward pass stops there)."""
        captured: list[torch.Tensor] = []
        handle = None if layer is None else layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            for m in self.chunks(rows):
                captured.clear()
                inputs = self.x[:m].detach().requires_grad_(layer is None)
                with torch.enable_grad():
                    scores = self.module(inputs).gather(1, self.t[:m, None]).squeeze(1)
                    torch.autograd.grad(scores.sum(), inputs if layer is None else captured[-1])
        finally:
            if handle is not None:
                handle.remove()

    def forward_only(self, rows: int) -> None:
        """Forward passes (inference mode) for ``rows`` inputs, ``batch_size`` rows per pass."""
        with torch.inference_mode():
            for m in self.chunks(rows):
                self.module(self.x[:m])

    def run(self, passes: "Passes", n: int, layer: nn.Module | None) -> None:
        if passes.fb:
            self.forward_backward(n * passes.fb)
        if passes.fb_layer:
            self.forward_backward(n * passes.fb_layer, layer)
        if passes.fwd:
            self.forward_only(n * passes.fwd)


@dataclass(frozen=True)
class Passes:
    """Rows per image of a method's floor: forward+backward to the input (``fb``), forward+backward
    down to the Grad-CAM layer only (``fb_layer``), forward-only (``fwd``)."""

    fb: int = 0
    fb_layer: int = 0
    fwd: int = 0

    def __str__(self) -> str:
        parts = [f"{self.fb}fb" if self.fb else "", f"{self.fb_layer}fbL" if self.fb_layer else "",
                 f"{self.fwd}f" if self.fwd else ""]
        return "+".join(p for p in parts if p)


def passes_per_image(method: str, params: Any, shape: tuple[int, ...], n_images: int = 1) -> Passes:
    """The passes per image of the method's floor."""
    if method == "occlusion":
        from core.attribution.occlusion import occlusion_masks

        return Passes(fwd=len(occlusion_masks(shape[-2], shape[-1], params.window, params.stride)) + 1)
    if method == "smoothgrad":
        return Passes(fb=params.samples)
    if method == "integrated_gradients":
        return Passes(fb=params.steps, fwd=2)
    if method == "expected_gradients":
        # one forward+backward per sample, plus the forward passes for f(x) and the background's mean output
        return Passes(fb=params.samples, fwd=1 + -(-params.background_size // max(1, n_images)))
    if method == "lime":
        return Passes(fwd=params.num_samples)  # one forward pass per perturbed copy of each image
    if method == "grad_cam":
        return Passes(fb_layer=1)
    if method == "guided_grad_cam":
        return Passes(fb=1, fb_layer=1)
    return Passes(fb=1)  # gradient, gradient x input, Guided Backprop, LRP


# -- captum -----------------------------------------------------------------------------------


BACKGROUND: np.ndarray = np.zeros((1, 1, 1, 1), dtype=np.float32)  # set per model by bench_model


def captum_runner(method: str, params: Any, module: nn.Module, adapter: TorchAdapter, shape: tuple[int, ...],
                  device: str, batch_size: int = DEFAULT_BATCH_SIZE
                  ) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """``f(x, target) -> maps`` calling captum with its defaults (settings matched to ours)."""
    import captum.attr as ca

    def wrap(attribute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        def run(x: np.ndarray, target: np.ndarray) -> np.ndarray:
            xt = torch.as_tensor(x).to(device)
            tt = torch.as_tensor(target).to(device)
            return attribute(xt, tt).detach().cpu().numpy()

        return run

    modules = dict(module.named_modules())
    if method == "gradient":
        return wrap(lambda x, t: ca.Saliency(module).attribute(x, target=t, abs=params.absolute))
    if method == "gradient_x_input":
        return wrap(lambda x, t: ca.InputXGradient(module).attribute(x, target=t))
    if method == "guided_backprop":
        return wrap(lambda x, t: ca.GuidedBackprop(module).attribute(x, target=t))
    if method == "smoothgrad":
        return wrap(lambda x, t: ca.NoiseTunnel(ca.Saliency(module)).attribute(
            x, nt_type="smoothgrad", nt_samples=params.samples, stdevs=params.noise_level * 1.0, target=t,
            abs=params.absolute))
    if method == "integrated_gradients":
        return wrap(lambda x, t: ca.IntegratedGradients(module).attribute(
            x, baselines=torch.zeros_like(x), target=t, n_steps=params.steps, method=params.rule))
    if method == "occlusion":
        window, stride, channels = params.window, params.stride, shape[0]

        def proba(z: torch.Tensor) -> torch.Tensor:
            return torch.softmax(module(z), dim=1)

        return wrap(lambda x, t: ca.Occlusion(proba).attribute(
            x, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride), baselines=0.0,
            target=t)[:, :1])  # captum repeats the per-pixel value over the channels
    if method == "grad_cam":
        layer = modules[params.layer]

        def gradcam(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            cam = ca.LayerGradCam(module, layer).attribute(x, target=t, relu_attributions=True)
            return ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode=params.interpolation)

        return wrap(gradcam)
    if method == "guided_grad_cam":
        layer = modules[params.layer]
        return wrap(lambda x, t: ca.GuidedGradCam(module, layer).attribute(
            x, target=t, interpolate_mode=params.interpolation))
    if method == "expected_gradients":
        # The peer here is shap's GradientExplainer (captum has no expected gradients): defaults
        # (batch_size 50, every output differentiated), same background subset, samples and seed.
        import shap

        from core.attribution.expected_gradients import background_subset

        def expected(x: np.ndarray, target: np.ndarray) -> np.ndarray:
            background = torch.as_tensor(background_subset(BACKGROUND, params.background_size, params.seed)).to(device)
            values = shap.GradientExplainer(module, background).shap_values(
                torch.as_tensor(x).to(device), nsamples=params.samples, rseed=params.seed)
            values = np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values)
            return np.stack([values[i, ..., target[i]] for i in range(len(x))]).astype(np.float32)

        return expected
    if method == "lrp":
        from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule

        from core.nets import Standardize

        model = copy.deepcopy(module)  # captum attaches rules and hooks to the model it is given

        def lrp(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            # captum deletes every layer's rule after each call: set the two it has no default for.
            for sub in model.modules():
                if isinstance(sub, Standardize):
                    sub.rule = IdentityRule()
                elif isinstance(sub, nn.Flatten):
                    sub.rule = EpsilonRule(1e-9)  # IdentityRule fails on a reshape; identity up to 1e-9
            return ca.LRP(model).attribute(x, target=t)

        return wrap(lrp)
    if method == "lime":
        from captum._utils.models.linear_model import SkLearnRidge

        from core.attribution.lime_image import cosine_kernel, grid_segments
        from core.attribution.occlusion import OcclusionParams, fill_images

        height, width = shape[-2:]
        segments = grid_segments(height, width, params.resolved_segment(height, width))
        mask = torch.as_tensor(segments, dtype=torch.long).to(device)[None, None]  # one superpixel over every channel

        def similarity(_inputs: Any, _perturbed: Any, on: torch.Tensor, **_kwargs: Any) -> float:
            return float(cosine_kernel(on.detach().cpu().numpy().reshape(1, -1), params.kernel_width)[0])

        lime = ca.Lime(lambda z: torch.softmax(module(z), dim=1), interpretable_model=SkLearnRidge(alpha=1.0),
                       similarity_func=similarity)

        def lime_run(x: np.ndarray, target: np.ndarray) -> np.ndarray:
            xt = torch.as_tensor(x).to(device)
            baselines: Any = 0.0 if params.fill == "zero" else torch.as_tensor(
                fill_images(x, OcclusionParams(fill=params.fill), None)).to(device)
            with torch.inference_mode():
                maps = lime.attribute(xt, baselines=baselines, target=torch.as_tensor(target).to(device),
                                      feature_mask=mask, n_samples=params.num_samples,
                                      perturbations_per_eval=batch_size)
            return maps[:, :1].detach().cpu().numpy()  # every channel of a superpixel has its weight

        return lime_run
    return None


def agreement(method: str, ours: np.ndarray, theirs: np.ndarray) -> str:
    if ours.shape != theirs.shape:
        return f"shape {ours.shape} vs {theirs.shape}"
    if method in ("smoothgrad", "lime"):
        if np.ptp(ours) == 0 or np.ptp(theirs) == 0:
            return "constant"  # no correlation to give
        return f"r={np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]:.3f}"
    scale = float(np.abs(theirs).max())
    return f"{float(np.abs(ours - theirs).max()) / (scale or 1.0):.1e}"


# -- one model ---------------------------------------------------------------------------------


@dataclass
class Row:
    method: str
    batch: int
    ours_s: float | None = None
    floor_s: float | None = None
    captum_s: float | None = None
    agree: str = ""
    passes: str = ""
    note: str = ""

    @property
    def over_floor(self) -> float | None:
        return None if self.ours_s is None or not self.floor_s else self.ours_s / self.floor_s

    @property
    def over_captum(self) -> float | None:
        return None if self.ours_s is None or not self.captum_s else self.ours_s / self.captum_s

    def misses(self) -> list[str]:
        out = []
        if self.batch == FLOOR_BATCH and self.over_floor is not None and self.over_floor > FLOOR_TARGET * MARGIN:
            out.append(f"ours/floor {self.over_floor:.2f} > {FLOOR_TARGET}")
        if self.over_captum is not None and self.over_captum > CAPTUM_TARGET * MARGIN:
            out.append(f"ours/captum {self.over_captum:.2f} > {CAPTUM_TARGET}")
        return out


def bench_model(label: str, adapter: TorchAdapter, images: np.ndarray, methods: list[str], batches: list[int],
                args: argparse.Namespace) -> list[Row]:
    device = adapter.device
    module = adapter.torch_module()
    shape = tuple(images.shape[1:])
    global BACKGROUND
    # Expected gradients' baselines: the model's own images (uniform noise for the random ResNet).
    BACKGROUND = np.concatenate([images] * -(-200 // len(images)))[:200]
    context = ImageContext(background=BACKGROUND)
    rows: list[Row] = []
    print(f"\n== {label}: input {shape}, {sum(p.numel() for p in module.parameters()):,} parameters, "
          f"device {device} ==", flush=True)
    for method in methods:
        spec = get_method(method)
        reason = spec.unsupported(adapter)
        if reason:
            short = "not a chain" if "chain" in reason else reason.split(".")[0]
            rows.append(Row(method, 0, note=f"n/a ({short})"))
            print(f"  {method}: n/a: {reason}", flush=True)
            continue
        params = resolve_params(method, None, adapter, shape)
        layer = dict(module.named_modules())[params.layer] if getattr(params, "layer", None) else None
        captum_fn = captum_runner(method, params, module, adapter, shape, device, args.batch_size)
        for n in batches:
            x = images[:n]
            target = adapter.predict(x, args.batch_size).astype(np.int64)
            passes = passes_per_image(method, params, shape, n)
            floor = Floor(module, x, target, args.batch_size, device)
            row = Row(method, n, passes=str(passes))
            fns: dict[str, Callable[[], Any]] = {
                "ours": lambda: spec.run(adapter, x, target, params, batch_size=args.batch_size, context=context).maps,
                "floor": lambda: floor.run(passes, n, layer),
            }
            if captum_fn is not None and not args.no_captum:
                fns["captum"] = lambda: captum_fn(x, target)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # captum's "input does not require gradients" etc.
                measured = timed(fns, args.repeats, device, args.min_time_ms / 1e3)
            row.ours_s, ours = measured["ours"]
            row.floor_s = measured["floor"][0]
            if "captum" in measured:
                row.captum_s, theirs = measured["captum"]
                if method == "lrp":  # captum's EpsilonRule default is 1e-9, ours 1e-6: compare at 1e-9 (untimed)
                    ours = spec.run(adapter, x, target, replace(params, epsilon=CAPTUM_LRP_EPSILON),
                                    batch_size=args.batch_size, context=context).maps
                row.agree = agreement(method, ours, theirs)
            rows.append(row)
            if args.verbose:
                print(f"  {method:<21} n={n:<3} ours {row.ours_s * 1e3:9.1f} ms  floor {row.floor_s * 1e3:9.1f} ms"
                      + (f"  captum {row.captum_s * 1e3:9.1f} ms" if row.captum_s else ""), flush=True)
    return rows


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(label: str, rows: list[Row]) -> None:
    print(f"\n{label}")
    print(f"{'method':<21} {'batch':>5} {'passes/img':>10} {'ours ms':>9} {'floor ms':>9} {'ours/floor':>10} "
          f"{'captum ms':>10} {'ours/captum':>11} {'agree':>9}  target")
    for r in rows:
        if r.note:
            print(f"{r.method:<21} {'-':>5} {'':>10} {r.note}")
            continue
        misses = r.misses()
        status = "MISS: " + "; ".join(misses) if misses else "ok"
        print(f"{r.method:<21} {r.batch:>5} {r.passes:>10} {fmt(r.ours_s and r.ours_s * 1e3, '9.2f')} "
              f"{fmt(r.floor_s and r.floor_s * 1e3, '9.2f')} {fmt(r.over_floor, '10.2f')} "
              f"{fmt(r.captum_s and r.captum_s * 1e3, '10.2f')} {fmt(r.over_captum, '11.2f')} {r.agree:>9}  {status}")


def row_json(r: Row) -> dict[str, Any]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1e3, 3)

    return {"method": r.method, "batch": r.batch, "ours_ms": ms(r.ours_s), "floor_ms": ms(r.floor_s),
            "captum_ms": ms(r.captum_s), "agree": r.agree, "note": r.note}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender after one warm-up (default 5)")
    parser.add_argument("--quick", action="store_true", help="3 repeats, batch 16 only")
    parser.add_argument("--min-time-ms", type=float, default=50.0,
                        help="a timed sample repeats a fast call until it lasts this long (default 50 ms)")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="statistic over the samples (default median; min is steadier on a busy machine)")
    parser.add_argument("--batches", default="1,16", help="comma-separated batch sizes (images) (default 1,16)")
    parser.add_argument("--methods", default="", help="comma-separated methods (default: every registered one)")
    parser.add_argument("--models", default="mnist,resnet", help="comma-separated: mnist, resnet (default both)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"rows per pass for ours and the floor (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--resnet-widths", default="8,16,32",
                        help="channels of the ResNet's 3 stages (default 8,16,32)")
    parser.add_argument("--no-captum", action="store_true", help="skip captum (ours and the floor only)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print each measurement as it is taken")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.batches = str(FLOOR_BATCH)
    global STAT
    STAT = statistics.median if args.stat == "median" else min
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or method_names()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    widths = tuple(int(w) for w in args.resnet_widths.split(","))
    if args.repeats < 1 or not batches or min(batches) < 1 or max(batches) > FLOOR_BATCH or len(widths) != 3:
        parser.error(f"--repeats >= 1, batches in 1..{FLOOR_BATCH}, --resnet-widths: 3 numbers")
    for m in methods:
        get_method(m)  # unknown names fail here, before any model loads

    import captum

    device = resolve_device()
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else ""
    print(f"Attribution benchmark: device {device}{gpu}, torch {torch.__version__}, captum {captum.__version__}, "
          f"torch threads {torch.get_num_threads()}; {args.stat} of {args.repeats} samples "
          f"(>= {args.min_time_ms:g} ms each) after 1 warm-up; {args.batch_size} rows per pass (ours and floor)")
    print(f"Targets: ours/floor <= {FLOOR_TARGET} at batch {FLOOR_BATCH}; ours/captum <= {CAPTUM_TARGET} everywhere; "
          f"both with a {round((MARGIN - 1) * 100)}% noise margin.")
    print("passes/img: the floor's rows per image, fb = forward+backward to the input, fbL = to the Grad-CAM "
          "layer, f = forward only.\nagree: max|ours-captum|/max|captum| (SmoothGrad: correlation; LRP: ours at "
          "captum's epsilon 1e-9; LIME: correlation, captum with lime_image's ridge and kernel).", flush=True)

    results: dict[str, list[Row]] = {}
    labels: dict[str, str] = {}
    for model in models:
        if model == "mnist":
            adapter, images, label = mnist_model(device)
        elif model == "resnet":
            adapter = resnet_adapter(device, widths)
            images = np.random.default_rng(0).uniform(0, 1, (FLOOR_BATCH, 3, 32, 32)).astype(np.float32)
            label = f"ResNet-style CNN 3x32x32 (random weights, widths {widths}, uniform-noise images)"
        else:
            parser.error(f"unknown model {model!r}: use mnist, resnet")
        labels[model] = label
        results[model] = bench_model(label, adapter, images, methods, batches, args)

    for model, rows in results.items():
        print_table(labels[model], rows)
    misses = [f"{model}/{r.method}/n={r.batch}: {m}"
              for model, rows in results.items() for r in rows for m in r.misses()]
    print()
    print("Summary: all targets met" if not misses
          else f"Summary: {len(misses)} missed target(s): " + "; ".join(misses))
    summary = {"bench": "attributions", "device": device, "repeats": args.repeats, "batch_size": args.batch_size,
               "targets": {"ours_over_floor": FLOOR_TARGET, "ours_over_captum": CAPTUM_TARGET, "margin": MARGIN},
               "targets_met": not misses, "misses": misses,
               "results": {model: [row_json(r) for r in rows] for model, rows in results.items()}}
    print(json.dumps(summary))
    return 1 if args.check and misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
