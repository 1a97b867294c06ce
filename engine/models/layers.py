"""Building blocks shared by every self-attentive model: embeddings, attention with
optional learned local heads, encoder blocks.

Shapes: B batch, L sequence length, D hidden size, H heads (G global + Hl local), Dh = D
/ H. Sequences are left-padded with id 0, so the most recent item is always at position
L-1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import ConfigError

# A large negative logit instead of -inf: a query whose keys are all masked then gets a
# uniform (and later discarded) distribution rather than NaN.
MASKED = -1e9


class Dropout(nn.Module):
    """Inverted dropout. On the CPU, PyTorch's dropout draws its mask with
    ``bernoulli_``, which measured 2.2x slower here than comparing ``rand_like`` to p;
    dropout was half of a SASRec forward pass on two cores. Other devices use the native
    kernel."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        keep = torch.rand_like(x) >= self.p
        return x * keep / (1.0 - self.p)


class SequenceEmbedding(nn.Module):
    """Token embedding times sqrt(D) plus a learned absolute position embedding, then
    dropout.

    The sqrt(D) scale follows SASRec's reference code; the table is also the output
    layer (tied embeddings), so ``weight`` is exposed.
    """

    def __init__(
        self, vocab: int, max_len: int, dim: int, dropout: float, positions=True
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim) if positions else None
        self.dropout = Dropout(dropout)
        self.scale = math.sqrt(dim)

    @property
    def weight(self) -> Tensor:
        return self.tokens.weight

    def forward(self, ids: Tensor, extra: Tensor | None = None) -> Tensor:
        B, L = ids.shape
        x = self.tokens(ids) * self.scale  # (B, L, D)
        if extra is not None:
            x = x + extra
        if self.positions is not None:
            # (L, D) broadcast over B
            x = x + self.positions(torch.arange(L, device=ids.device))
        return self.dropout(x)


class LocalBias(nn.Module):
    """The learned locality bias of CaFe's local heads (paper Eq. 5-6, after LOCKER).

    For local head h the attention logit of query i on key j gets ``ln theta_ij =
    (q_i + k_j + d_ij) . w_h + b_h``, where q and k are the head's own query and key
    projections and d_ij is a learned embedding of the signed distance i - j.
    """

    def __init__(self, heads: int, head_dim: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        # signed distances -(L-1)..(L-1) -> indices 0..2L-2
        self.distance = nn.Parameter(
            torch.randn(2 * max_len - 1, heads, head_dim) * 0.02
        )
        self.w = nn.Parameter(torch.randn(heads, head_dim) * head_dim**-0.5)
        self.b = nn.Parameter(torch.zeros(heads))

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        B, Hl, L, Dh = q.shape
        qw = torch.einsum("bhld,hd->bhl", q, self.w)  # (B, Hl, L)
        kw = torch.einsum("bhld,hd->bhl", k, self.w)  # (B, Hl, L)
        dw = torch.einsum("phd,hd->hp", self.distance, self.w)  # (Hl, 2*max_len-1)
        pos = torch.arange(L, device=q.device)
        index = pos[:, None] - pos[None, :] + self.max_len - 1  # (L, L) distance i - j
        # (B, Hl, L, 1) + (B, Hl, 1, L) + (1, Hl, L, L) -> (B, Hl, L, L)
        bias = qw[..., :, None] + kw[..., None, :] + dw[:, index][None]
        return bias + self.b[None, :, None, None]


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention; the last ``local_heads`` heads add the learned local
    bias.

    ``side`` (optional, (B, L, D)) is added to queries and keys only, never values: that
    is how NOVA lets side information steer attention without entering the
    representation.
    """

    def __init__(
        self, dim: int, heads: int, local_heads: int, dropout: float, max_len: int
    ):
        super().__init__()
        total = heads + local_heads
        # engine.models.check_heads refuses such configs first, naming the flags; this
        # guards direct use of the layer
        if total < 1 or dim % total:
            raise ConfigError(
                f"hidden size {dim} must be divisible by the {total} attention heads "
                f"({heads} global + {local_heads} local); change the hidden size or "
                "the heads."
            )
        self.heads, self.local_heads, self.head_dim = total, local_heads, dim // total
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)
        self.dropout = Dropout(dropout)
        self.local = (
            LocalBias(local_heads, self.head_dim, max_len) if local_heads else None
        )
        # set by attention_maps(): keep the last weights for inspection
        self.record = False
        self.last_weights: Tensor | None = None

    def forward(self, x: Tensor, allowed: Tensor, side: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        H, Dh = self.heads, self.head_dim
        qk_in = x if side is None else x + side

        # (B, L, D) -> (B, L, H, Dh) -> (B, H, L, Dh)
        q = self.q(qk_in).view(B, L, H, Dh).transpose(1, 2)
        k = self.k(qk_in).view(B, L, H, Dh).transpose(1, 2)
        v = self.v(x).view(B, L, H, Dh).transpose(1, 2)

        # (B, H, L, Dh) x (B, H, Dh, L) -> (B, H, L, L)
        logits = q @ k.transpose(-2, -1) / math.sqrt(Dh)
        if self.local is not None:
            G = H - self.local_heads
            local = logits[:, G:] + self.local(q[:, G:], k[:, G:])
            logits = torch.cat([logits[:, :G], local], dim=1)
        logits = logits.masked_fill(~allowed, MASKED)
        weights = F.softmax(logits, dim=-1)
        if self.record:
            self.last_weights = weights.detach()

        # (B, H, L, L) x (B, H, L, Dh) -> (B, H, L, Dh) -> (B, L, D)
        out = self.dropout(weights) @ v
        out = out.transpose(1, 2).reshape(B, L, D)
        return self.out(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, inner: int, dropout: float, activation: str = "relu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, inner)
        self.fc2 = nn.Linear(inner, dim)
        self.dropout = Dropout(dropout)
        self.activation = nn.GELU() if activation == "gelu" else nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(self.activation(self.fc1(x))))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + ffn(LN(x))."""

    def __init__(self, dim, heads, local_heads, dropout, max_len, activation="relu"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-8)
        self.attention = MultiHeadAttention(dim, heads, local_heads, dropout, max_len)
        self.norm2 = nn.LayerNorm(dim, eps=1e-8)
        self.ffn = FeedForward(dim, dim, dropout, activation)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, allowed: Tensor, keep: Tensor, side=None) -> Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), allowed, side))
        x = x + self.dropout(self.ffn(self.norm2(x)))
        # padded positions stay exactly zero between blocks
        return x * keep


class Encoder(nn.Module):
    """Encoder blocks over a left-padded sequence, causal or bidirectional."""

    def __init__(
        self,
        dim: int,
        blocks: int,
        heads: int,
        dropout: float,
        max_len: int,
        local_heads: int = 0,
        causal: bool = True,
        activation: str = "relu",
    ):
        super().__init__()
        self.causal = causal
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, heads, local_heads, dropout, max_len, activation)
            for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-8)

    def forward(self, x: Tensor, real: Tensor, side: Tensor | None = None) -> Tensor:
        """``x`` (B, L, D) embedded inputs, ``real`` (B, L) True where not padding."""
        allowed = attention_mask(real, self.causal)  # (B, 1, L, L)
        keep = real.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        x = x * keep
        for block in self.blocks:
            x = block(x, allowed, keep, side)
        return self.norm(x) * keep

    def attention_modules(self) -> list[MultiHeadAttention]:
        return [block.attention for block in self.blocks]


def attention_mask(real: Tensor, causal: bool) -> Tensor:
    """(B, 1, L, L) True where query i may attend to key j.

    Keys must be real items (and not later than i when causal). Every position may
    attend to itself, so padded queries never see a fully masked row; their outputs are
    zeroed anyway.
    """
    B, L = real.shape
    allowed = real[:, None, None, :].expand(B, 1, L, L)  # (B, 1, L, L) key is real
    if causal:
        allowed = (
            allowed & torch.ones(L, L, dtype=torch.bool, device=real.device).tril()
        )
    return allowed | torch.eye(L, dtype=torch.bool, device=real.device)


def record_attention(encoders: dict[str, Encoder], run) -> dict[str, Tensor]:
    """Run ``run()`` with every attention module recording; return "name layer n"
    weights."""
    modules = {
        f"{name} layer {i + 1}": module
        for name, encoder in encoders.items()
        for i, module in enumerate(encoder.attention_modules())
    }
    for module in modules.values():
        module.record = True
    try:
        run()
        return {key: module.last_weights for key, module in modules.items()}
    finally:
        for module in modules.values():
            module.record = False
            module.last_weights = None


def pos_neg_logits(h: Tensor, table: Tensor, pos: Tensor, neg: Tensor):
    """Dot products of states (B, L, D) with the embeddings of positives and negatives
    (B, L).

    One lookup for both keeps the backward pass to a single scatter into the table.
    """
    ids = torch.stack([pos, neg], dim=-1)  # (B, L, 2)
    # (B, L, 2, D) * (B, L, 1, D) summed over D -> (B, L, 2)
    logits = (F.embedding(ids, table) * h.unsqueeze(-2)).sum(-1)
    return logits[..., 0], logits[..., 1]


def bce_pair(pos_logits: Tensor, neg_logits: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of positives (label 1) and negatives (label 0) at masked
    positions.

    Each of the two terms is a mean over the real positions, as in SASRec's reference
    code.
    """
    pos = F.binary_cross_entropy_with_logits(
        pos_logits[mask], torch.ones_like(pos_logits[mask])
    )
    neg = F.binary_cross_entropy_with_logits(
        neg_logits[mask], torch.zeros_like(neg_logits[mask])
    )
    return pos + neg


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform for every matrix, as SASRec's and the CaFe authors' code do.

    PyTorch's default N(0, 1) embeddings, scaled by sqrt(D) on input, start training far
    from where those references start. Padding rows are zeroed again afterwards.
    """
    for name, tensor in module.named_parameters():
        if tensor.dim() > 1 and "norm" not in name and "local" not in name:
            nn.init.xavier_uniform_(tensor)
    for sub in module.modules():
        if isinstance(sub, nn.Embedding) and sub.padding_idx is not None:
            with torch.no_grad():
                sub.weight[sub.padding_idx].zero_()


class FeatureFusion(nn.Module):
    """FDSA's fusion of two encoders: concatenate their outputs and project back to D.

    Zhang et al., "Feature-level Deeper Self-Attention Network for Sequential
    Recommendation", IJCAI 2019, Eq. 14: O = [O_item ; O_feature] W + b. BERT-F and
    LOCKER-F fuse intents the same way.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(2 * dim, dim)

    def forward(self, items: Tensor, intents: Tensor, keep: Tensor) -> Tensor:
        # (B, L, D) ++ (B, L, D) -> (B, L, 2D) -> (B, L, D); padding stays zero
        return self.proj(torch.cat([items, intents], dim=-1)) * keep
