"""TorchAdapter for uploaded TorchScript / torch.export models, whose inner layers cannot be hooked."""

from __future__ import annotations

from typing import Any

from core.adapters.torch_adapter import TorchAdapter


class UploadedTorchAdapter(TorchAdapter):
    """A :class:`TorchAdapter` whose ``layer_names()`` lists only layers a forward hook can observe.

    Uploaded modules are wrapped as ``input -> (normalise) -> inner -> output``, where ``input`` and
    ``output`` are ``nn.Identity`` layers. TorchScript modules refuse forward hooks and a
    torch.export program never calls its submodules, so for them only ``input`` and ``output`` (the
    model's raw scores) are offered; a plain ``nn.Module`` (a trusted pickle) offers every leaf.
    """

    def __init__(self, module: Any, *, hookable_inner: bool, source_hash: str = "", **kwargs: Any) -> None:
        # The fingerprint covers the weights and the layers' repr but not compiled code: two TorchScript
        # files with the same weights (traced vs scripted, or another forward) must not share caches,
        # so the uploaded file's own hash enters it too.
        self._hookable_inner = hookable_inner
        self._source_hash = source_hash
        super().__init__(module, encoder_fingerprint=f"file:{source_hash}" if source_hash else "", **kwargs)

    @property
    def layers_hidden(self) -> bool:
        """True when the model's inner layers are compiled (TorchScript, torch.export) and cannot be
        inspected or hooked: layer-wise methods (Guided Backprop, Grad-CAM, LRP) cannot run."""
        return not self._hookable_inner

    def layer_names(self) -> list[str]:
        names = super().layer_names()
        if self._hookable_inner:
            return names
        return [n for n in names if n in ("input", "output")]

    def with_module(self, module: Any, name: str) -> "UploadedTorchAdapter":
        return UploadedTorchAdapter(module, hookable_inner=self._hookable_inner, source_hash=self._source_hash, name=name,
                                    class_names=self.class_names,
                                    input_kind=self.info.input_kind, outputs=self.outputs, device=self.device,
                                    description=self.info.description)
