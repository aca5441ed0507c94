"""Hugging Face transformer text classifiers behind the same adapter as every torch model.

:class:`TransformerClassifier` wraps either a ``*ForSequenceClassification`` model or an encoder
with a linear head on its mean-pooled last hidden state (the built-in ``minilm``) as one
``nn.Module`` taking a packed ``(n, 2, L)`` tensor of token ids and attention mask. Wrapped this way,
:class:`core.adapters.torch_adapter.TorchAdapter`'s machinery applies unchanged: forward hooks,
MC dropout over the model's own dropout modules, randomised copies for the sanity checks.

:class:`TransformerTextAdapter` adds what a tokeniser brings:

- token-budget batching: texts sorted by length before batching, each batch padded to its own
  longest text (not to ``max_length``), results returned in the caller's order;
- ``layer_names``: the mean-pooled and first-token ([CLS]) hidden state of every layer (the
  embedding output is layer 0), which the Embeddings page maps, then the logits;
- :meth:`input_embeddings` (``get_input_embeddings()``, never a hard-coded attribute) and
  :meth:`token_words` (each token's word in a :class:`core.text.words.WordDocument`, from the fast
  tokeniser's character offsets), which the gradient methods need.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from core.adapters.torch_adapter import TorchAdapter

DEFAULT_MAX_TOKENS = 128  # the CPU default: every text is cut to its first 128 tokens (said on the pages)


def _module_base() -> type:
    import torch

    return torch.nn.Module


class TransformerClassifier(_module_base()):  # type: ignore[misc]
    """``forward(packed) -> logits`` with ``packed[:, 0]`` the token ids and ``packed[:, 1]`` the mask.

    ``model``: a ``*ForSequenceClassification`` (its own head) or, with ``head``, an encoder whose
    last hidden state, mean-pooled over the unmasked tokens, goes through ``head``.
    The identity modules ``mean.K`` and ``cls.K`` see the mean-pooled and first-token hidden state
    of layer K (0 = the embeddings) on every forward pass, and ``logits`` the output, so a hook can
    record them.
    """

    def __init__(self, model: Any, head: Any = None) -> None:
        import torch

        super().__init__()
        self.model = model
        self.head = head
        n_layers = int(model.config.num_hidden_layers) + 1
        self.mean = torch.nn.ModuleList(torch.nn.Identity() for _ in range(n_layers))
        self.cls = torch.nn.ModuleList(torch.nn.Identity() for _ in range(n_layers))
        self.logits = torch.nn.Identity()

    def layer_groups(self) -> list[str]:
        """The units the randomisation test re-initialises together: the embeddings, then each encoder block
        (the ``ModuleList`` of ``num_hidden_layers`` blocks, whatever the architecture names it)."""
        import torch

        names = {id(m): n for n, m in self.named_modules()}
        embeddings = names[id(self.model.get_input_embeddings())].rsplit(".", 1)[0]
        n_blocks = int(self.model.config.num_hidden_layers)
        blocks = next((n for n, m in self.named_modules()
                       if isinstance(m, torch.nn.ModuleList) and len(m) == n_blocks and n.startswith("model.")), None)
        return [embeddings, *([f"{blocks}.{i}" for i in range(n_blocks)] if blocks else [])]

    def forward(self, packed: Any, output_attentions: bool = False) -> Any:
        ids, mask = packed[:, 0], packed[:, 1]
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                         output_attentions=output_attentions)
        weights = mask.unsqueeze(-1).to(out.hidden_states[0].dtype)
        denominator = weights.sum(dim=1).clamp(min=1.0)
        pooled = None
        for k, hidden in enumerate(out.hidden_states):
            self.cls[k](hidden[:, 0])
            pooled = self.mean[k]((hidden * weights).sum(dim=1) / denominator)
        logits = self.logits(self.head(pooled) if self.head is not None else out.logits)
        if output_attentions:
            return logits, out.attentions
        return logits


class TransformerTextAdapter(TorchAdapter):
    """A :class:`TransformerClassifier` and its (fast) tokeniser.

    Parameters
    ----------
    module : TransformerClassifier
    tokenizer : a ``transformers`` fast tokeniser
    max_tokens : int
        Texts are cut to this many tokens (special tokens included).
    Other parameters as :class:`TorchAdapter`; ``encoder_fingerprint`` should identify the
    tokeniser's files.
    """

    default_batch_size = 32

    def __init__(self, module: Any, tokenizer: Any, *, max_tokens: int = DEFAULT_MAX_TOKENS, **kwargs: Any) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        self._files_fingerprint = kwargs.pop("encoder_fingerprint", "")
        fingerprint = f"{self._files_fingerprint}|max_tokens={self.max_tokens}"
        super().__init__(module, encode=self._encode_texts, encoder_fingerprint=fingerprint, **kwargs)
        self._info = replace(self._info, extra={**self._info.extra, "architecture": "transformer",
                                                "max_tokens": self.max_tokens,
                                                "layers": int(module.model.config.num_hidden_layers)})

    def _encode_texts(self, texts: Any) -> np.ndarray:
        enc = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=self.max_tokens,
                             return_tensors="np")
        return np.stack([enc["input_ids"], enc["attention_mask"]], axis=1).astype(np.int64)

    def with_module(self, module: Any, name: str) -> "TransformerTextAdapter":
        return TransformerTextAdapter(module, self.tokenizer, max_tokens=self.max_tokens, name=name,
                                      class_names=self.class_names, input_kind="text", outputs=self._outputs,
                                      encoder_fingerprint=self._files_fingerprint,
                                      device=self.device, description=self.info.description)

    # -- token-budget batching: sort by length, pad per batch, answer in the caller's order -----------
    def _by_length(self, x: Any, run: Any) -> np.ndarray:
        texts = [str(t) for t in x]
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = run(np.array([texts[i] for i in order], dtype=object))
        result = np.empty_like(out)
        result[order] = out
        return result

    def predict_proba(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            return np.empty((0, len(self.class_names)))
        return self._by_length(x, lambda xs: super(TransformerTextAdapter, self).predict_proba(xs, batch_size))

    def class_probability(self, x: Any, k: int, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            return np.empty((0,))
        return self._by_length(x, lambda xs: super(TransformerTextAdapter, self).class_probability(xs, k, batch_size))

    # -- layers: pooled hidden states ---------------------------------------------------------------
    def layer_names(self) -> list[str]:
        # per layer, the state the head reads (mean-pooled for a head of ours, [CLS] for the model's own) second,
        # so that the last hidden layer before the logits is the one the Embeddings page opens on
        pools = ("cls", "mean") if self._module.head is not None else ("mean", "cls")
        return [f"{pool}.{k}" for k in range(len(self._module.mean)) for pool in pools] + ["logits"]

    def activations(self, x: Any, layer: str, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            return super().activations(x, layer, batch_size)
        return self._by_length(x, lambda xs: super(TransformerTextAdapter, self).activations(xs, layer, batch_size))

    # -- what the gradient and attention methods need -----------------------------------------------
    def input_embeddings(self) -> Any:
        """The token embedding module, found with ``get_input_embeddings()``."""
        return self._module.model.get_input_embeddings()

    def baseline_token(self) -> int:
        """The token a path method's baseline puts in place of every word token (the pad token)."""
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else 0)

    def token_words(self, doc: Any) -> np.ndarray:
        """For each token position of ``doc.text`` (as the model sees it, cut to ``max_tokens``), the
        index of its word in ``doc.words``; -1 for special tokens and tokens between words."""
        enc = self.tokenizer(doc.text, truncation=True, max_length=self.max_tokens, return_offsets_mapping=True)
        starts, owners, pos = [], [], 0
        for segment, j in zip(doc.segments, doc.word_index):
            starts.append(pos)
            owners.append(int(j))
            pos += len(segment)
        starts_arr = np.array(starts)
        out = np.full(len(enc["input_ids"]), -1, dtype=np.int64)
        special = set(self.tokenizer.all_special_ids)
        for t, ((a, b), token) in enumerate(zip(enc["offset_mapping"], enc["input_ids"])):
            if token in special or b <= a:
                continue
            seg = int(np.searchsorted(starts_arr, a, side="right")) - 1
            out[t] = owners[seg]
        return out
