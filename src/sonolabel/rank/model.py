"""The SonoRank network: a residual frame encoder, a temporal Transformer, ranking and flexion heads.

A window of T frames is encoded frame by frame (five stride-2 residual stages, global average
pooling, a linear map to the embedding), given a learnable position per frame, passed through a
pre-LayerNorm Transformer encoder and mean-pooled into one sequence embedding. Stage 1 compares
two embeddings with one ranking head per finger ("did finger f move more in A than in B?");
stage 2 replaces them by a flexion classifier on the query window and a rest reference.

With label input the classifier can also (or only) read where each class changed in the window
against the rest frame (:mod:`.shapes`): features that the rest reference normalises per subject,
where learned embeddings also encode each subject's anatomy (docs/sonorank.md, "Flexion on a new
subject"). With raw frames it can read where the image moved against the rest frame (:mod:`.flow`),
and with both, the class areas and where the image moved within each class (``areas_flow``).
With ``feature_norm`` session those features are standardised by their own session's mean and
spread (:func:`session_standardise`): how far a subject's muscles bulge and slide differs between
subjects, and a session's own statistics take that out without a label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..store.layout import FINGERS
from . import flow
from .shapes import column_profile, feature_count, profile_change


@dataclass
class ArchConfig:
    """Network sizes. The defaults are the paper's (224x224, T=16, 64..512 channels, about 10.7 M parameters)."""

    in_channels: int = 1
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 512])
    embed: int = 64
    length: int = 16
    layers: int = 2
    heads: int = 4
    feedforward: int = 256
    dropout: float = 0.3
    rest: bool = True  # the classifier sees [query, rest]; False: the query alone (the MFT baseline)
    label_channels: int = 0  # the input's trailing one-hot label channels (0: raw frames only)
    flex_input: str = "embeddings"  # the flexion classifier sees: embeddings | areas | both | flow | areas_flow (see SonoRank.area_change)
    strips: int = 0  # areas: strips per class (0: whole-class shares, as before strips existed; see shapes.py)
    motion: bool = False  # each frame also shows the encoder its difference from the window's previous frame
    flow_version: int = 1  # flow: which definition of the features (1 in checkpoints made before it was recorded; see rank/flow.py)
    feature_norm: str = "training"  # areas / flow: standardised by the training set's statistics, or by each session's own (see session_standardise)


FLEX_INPUTS = ("embeddings", "areas", "both", "flow", "areas_flow")
FEATURE_NORMS = ("training", "session")


def session_standardise(features: torch.Tensor, session: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Each row of ``features`` (N, F) less the mean of the rows of its session (``session``, (N,) ids) and
    divided by their standard deviation. No label is needed: the statistics are the session's own windows,
    so they describe one subject's anatomy and range of motion, and taking them out makes a classifier
    trained on other subjects read a new one on its own scale (adaptive normalisation). The session
    should cover the fingers' motion, as a recording of the protocol does."""
    out = torch.empty_like(features)
    for s in torch.unique(session):
        mine = session == s
        part = features[mine]
        out[mine] = (part - part.mean(0)) / (part.std(0, unbiased=False) + eps)
    return out


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class FrameEncoder(nn.Module):
    """(N, C, H, W) frames -> (N, embed): a 7x7 stride-2 stem and block, then four stride-2 stages."""

    def __init__(self, in_channels: int, widths: list[int], embed: int):
        super().__init__()
        w0 = widths[0]
        stages = [nn.Sequential(nn.Conv2d(in_channels, w0, 7, 2, 3, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True), ResidualBlock(w0, w0, 1))]
        stages += [ResidualBlock(a, b, 2) for a, b in zip(widths[:-1], widths[1:])]
        self.stages = nn.ModuleList(stages)
        self.proj = nn.Linear(widths[-1], embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.proj(x.mean((2, 3)))


def _mlp(dims: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    return nn.Sequential(*layers)


class SonoRank(nn.Module):
    """Sequence encoder with five ranking heads (stage 1) and a flexion classifier (stage 2)."""

    def __init__(self, cfg: ArchConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed
        self.frames = FrameEncoder(cfg.in_channels + cfg.motion, cfg.widths, d)
        self.position = nn.Parameter(torch.zeros(1, cfg.length, d))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.feedforward, cfg.dropout, batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.rank_heads = nn.ModuleList(_mlp([2 * d, 256, 128, 64, 1], cfg.dropout) for _ in FINGERS)
        areas = cfg.flex_input in ("areas", "both", "flow", "areas_flow")
        if cfg.flex_input in ("areas", "both", "areas_flow") and cfg.label_channels < 1:
            raise ValueError("flexion from class areas needs label input")
        if cfg.flex_input in ("flow", "areas_flow") and cfg.in_channels - cfg.label_channels < 1:
            raise ValueError("flexion from the image's motion needs raw frames")
        n_areas = {
            "flow": flow.feature_count(),
            "areas_flow": feature_count(cfg.label_channels, cfg.strips) + flow.strip_count(cfg.label_channels, cfg.strips),
        }.get(cfg.flex_input, feature_count(cfg.label_channels, cfg.strips))
        n_areas = n_areas if areas else 0
        width = (2 * d if cfg.rest else d) * self.uses_embeddings + n_areas
        self.area_norm = nn.BatchNorm1d(n_areas, affine=False) if areas else None
        self.classifier = _mlp([width, 128, 64, len(FINGERS)], cfg.dropout)

    @property
    def tokens(self) -> int:
        """Frame tokens per window: T, or T - 1 with motion (the first frame only serves as the second's previous)."""
        return self.cfg.length - self.cfg.motion

    def embed_frames(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C, H, W) -> per-frame features (B, T, embed); cached by real-time inference. With
        motion, ``previous`` (B, T, C, H, W) holds each frame's predecessor in the window, and the
        encoder also sees the image channel's difference from it: where the tissue moved."""
        b, t = x.shape[:2]
        if self.cfg.motion:
            x = torch.cat([x, x[:, :, :1] - previous[:, :, :1]], 2)
        return self.frames(x.flatten(0, 1)).view(b, t, -1)

    def embed_sequence(self, feats: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, T, embed) -> one sequence embedding (B, embed)."""
        z = self.temporal(feats + self.position[:, : feats.shape[1]])
        return self.norm(z).mean(1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) windows -> (B, embed)."""
        if self.cfg.motion:
            return self.embed_sequence(self.embed_frames(x[:, 1:], x[:, :-1]))
        return self.embed_sequence(self.embed_frames(x))

    def encode_rest(self, frame: torch.Tensor) -> torch.Tensor:
        """(B, 1, C, H, W) rest frame -> (B, embed): the frame repeated over the window (it does not
        move), encoded once."""
        feats = self.embed_frames(frame, frame)
        return self.embed_sequence(feats.expand(-1, self.tokens, -1))

    def rank(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        """Logits (B, 5): finger f moved more in A than in B."""
        pair = torch.cat([za, zb], 1)
        return torch.cat([head(pair) for head in self.rank_heads], 1)

    def rank_groups(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits (G * P, 5) of the pairs (a[p], b[p]) within each of G groups of windows (G, K, T, C, H, W),
        each window encoded once."""
        g, k = x.shape[:2]
        z = self.encode(x.flatten(0, 1)).view(g, k, -1)
        return self.rank(z[:, a].flatten(0, 1), z[:, b].flatten(0, 1))

    @property
    def uses_embeddings(self) -> bool:
        return self.cfg.flex_input not in ("areas", "flow", "areas_flow")

    def area_change(self, x: torch.Tensor, rest: torch.Tensor | None) -> torch.Tensor | None:
        """(B, features): where each label class of the window's frames (B, T, C, H, W) changed against
        the rest frame (B, 1, C, H, W) (see :mod:`.shapes`), or with ``flex_input`` flow, where the image
        moved (see :mod:`.flow`), or with areas_flow both, the motion read within each class's strips
        (:func:`.flow.strip_change`); None when the classifier reads embeddings only."""
        if self.area_norm is None:
            return None
        rest = rest if rest is not None and self.cfg.rest else None
        if self.cfg.flex_input == "flow":
            return flow.flow_change(x[:, :, 0], rest[:, 0, 0] if rest is not None else None, self.cfg.flow_version)
        c = self.cfg.label_channels
        areas = self.profile_change(column_profile(x[:, :, -c:]), column_profile(rest[:, 0, -c:]) if rest is not None else None)
        if self.cfg.flex_input != "areas_flow":
            return areas
        ref, ref_labels = (rest[:, 0, 0], rest[:, 0, -c:]) if rest is not None else (None, None)
        moved = flow.strip_change(x[:, :, 0], x[:, :, -c:], ref, ref_labels, self.cfg.strips, self.cfg.flow_version)
        return torch.cat([areas, moved.to(areas)], 1)

    def profile_change(self, window: torch.Tensor, rest: torch.Tensor | None) -> torch.Tensor:
        """What :meth:`area_change` computes, from per-frame column profiles (B, T, C, W, 2) and the rest
        frame's (B, C, W, 2), for callers that keep profiles rather than frames."""
        return profile_change(window, rest if self.cfg.rest else None, self.cfg.strips)

    def standardise(self, areas: torch.Tensor | None, session: torch.Tensor) -> torch.Tensor | None:
        """:meth:`area_change` features of many windows (N, F) as the classifier reads them: with ``feature_norm``
        session, standardised per session (``session``: (N,) ids; :func:`session_standardise`), else as they are."""
        if areas is None or self.cfg.feature_norm != "session":
            return areas
        return session_standardise(areas, session.to(areas.device))

    def classify(self, zq: torch.Tensor | None, zr: torch.Tensor | None = None, areas: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, 5): finger f is flexed in the query window (against the rest reference ``zr``;
        ``areas`` from :meth:`area_change`, through :meth:`standardise`, when the classifier reads them)."""
        parts = ([zq, zr] if self.cfg.rest else [zq]) if self.uses_embeddings else []
        if self.area_norm is not None:
            parts.append(self.area_norm(areas))
        return self.classifier(torch.cat(parts, 1))

    def flex_logits(self, x: torch.Tensor, rest: torch.Tensor, areas: torch.Tensor | None = None) -> torch.Tensor:
        """Flexion logits (B, 5) of windows (B, T, C, H, W) against their rest frames (B, 1, C, H, W);
        ``areas``: the windows' features as :meth:`standardise` gives them (computed here when None, which
        with ``feature_norm`` session is the batch taken as one session)."""
        zq = self.encode(x) if self.uses_embeddings else None
        zr = self.encode_rest(rest) if self.uses_embeddings and self.cfg.rest else None
        if areas is None:
            areas = self.standardise(self.area_change(x, rest), torch.zeros(len(x), dtype=torch.long))
        return self.classify(zq, zr, areas)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Ranking logits of two batches of windows (B, T, C, H, W)."""
        return self.rank(self.encode(a), self.encode(b))


def count_parameters(model: nn.Module, part: str | None = None) -> int:
    """Trainable parameters of ``model`` (or of one named child, e.g. ``frames``)."""
    m = model if part is None else getattr(model, part)
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def parameter_groups(model: SonoRank, lrs: dict[str, float]) -> list[dict]:
    """Discriminative learning rates: ``early`` encoder stages, ``late`` stages, ``temporal``, ``heads``."""
    n = len(model.frames.stages)
    early = [p for s in model.frames.stages[: n // 2 + 1] for p in s.parameters()]
    late = [p for s in model.frames.stages[n // 2 + 1 :] for p in s.parameters()] + list(model.frames.proj.parameters())
    temporal = [model.position, *model.temporal.parameters(), *model.norm.parameters()]
    heads = [*model.rank_heads.parameters(), *model.classifier.parameters()]
    return [{"params": ps, "lr": lrs[name], "name": name} for name, ps in (("early", early), ("late", late), ("temporal", temporal), ("heads", heads))]
