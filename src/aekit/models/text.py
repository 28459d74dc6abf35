"""Autoencoders for text: a seq2seq sentence autoencoder and Socher et al.'s recursive autoencoder.

Both read right-padded token ids of shape (B, T) (``aekit.text``: id 0 is padding, 1 unknown,
2 begin, 3 end of sentence). ``input_shape`` is ``(max_len,)``, the longest sentence the model
reads; the Trainer stores ids as float32 (exact up to 2**24), so ``loss`` accepts float or
integer ids. Each batch is trimmed to its longest sentence before any work.

These models are not drop-in replacements for the image/window autoencoders: their inputs are
ids, not values (``input_kind = "tokens"``). The generic model tests skip them; ``tests/test_text.py``
holds their forward/backward checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..text.batching import pack, trim
from ..text.vocab import BOS, EOS, PAD, SPECIALS, UNK
from . import decoding
from .base import make_activation
from .registry import register_model

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def _check_text_config(name: str, cfg) -> None:
    shape = tuple(cfg.input_shape)
    if len(shape) != 1 or int(shape[0]) < 1:
        raise ConfigError(f"{name} needs input_shape (max_len,) = the most tokens per sentence, got {shape}")
    if cfg.vocab_size <= len(SPECIALS):
        raise ConfigError(f"vocab_size must exceed the {len(SPECIALS)} special tokens, got {cfg.vocab_size}")


class TokenModel(nn.Module):
    """Shared by the text models: token-id input of shape (B, T), T <= ``input_shape[0]``."""

    model_name: str = "token_model"
    input_kind = "tokens"

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.input_shape: tuple[int, ...] = (int(config.input_shape[0]),)

    @property
    def max_len(self) -> int:
        return self.input_shape[0]

    @property
    def code_dim(self) -> int:
        return math.prod(self.code_shape)


# -- seq2seq ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Seq2SeqAEConfig:
    input_shape: tuple[int, ...] = (50,)  # (max_len,): tokens per sentence (longer ones are truncated)
    vocab_size: int = 1000  # set from the vocabulary by TextAutoencoder
    embed_dim: int = 64
    cell: str = "gru"  # "gru" | "lstm"
    hidden: int = 128  # units per recurrent layer (encoder and decoder)
    num_layers: int = 1
    latent_dim: int = 64  # the sentence code: a Linear from the encoder's last hidden state
    code_activation: str = "tanh"
    # probability of feeding the true previous token to the decoder while training; below 1 the
    # decoder sometimes reads its own previous prediction (scheduled sampling, Bengio et al. 2015),
    # which costs a loop over time steps instead of one batched RNN call
    teacher_forcing: float = 1.0
    word_dropout: float = 0.0  # decoder inputs replaced by <unk> with this probability (Bowman et al. 2016)

    def __post_init__(self) -> None:
        _check_text_config("seq2seq_ae", self)
        if self.cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(map(repr, CELLS))}, got {self.cell!r}")
        if min(self.embed_dim, self.hidden, self.num_layers, self.latent_dim) < 1:
            raise ConfigError("embed_dim, hidden, num_layers and latent_dim must be >= 1")
        if not 0 <= self.teacher_forcing <= 1:
            raise ConfigError(f"teacher_forcing must be in [0, 1], got {self.teacher_forcing}")
        if not 0 <= self.word_dropout < 1:
            raise ConfigError(f"word_dropout must be in [0, 1), got {self.word_dropout}")


@register_model(
    "seq2seq_ae",
    presets={
        "small": dict(embed_dim=32, hidden=64, latent_dim=32),
        "lstm": dict(cell="lstm"),
        "scheduled": dict(teacher_forcing=0.75),
    },
)
class Seq2SeqAE(TokenModel):
    """Seq2seq sentence autoencoder: embedding -> RNN -> code -> RNN decoder -> next-token softmax."""

    Config = Seq2SeqAEConfig

    def __init__(self, config: Seq2SeqAEConfig) -> None:
        super().__init__(config)
        v, e, h, n, c = config.vocab_size, config.embed_dim, config.hidden, config.num_layers, config.latent_dim
        rnn = CELLS[config.cell]
        self.is_lstm = config.cell == "lstm"
        self.embed = nn.Embedding(v, e, padding_idx=PAD)
        self.encoder_rnn = rnn(e, h, n, batch_first=True)
        self.to_code = nn.Linear(h, c)
        self.code_act = make_activation(config.code_activation)
        # the code sets the decoder's initial state and is read again at every step
        self.to_state = nn.Linear(c, n * h * (2 if self.is_lstm else 1))
        self.decoder_rnn = rnn(e + c, h, n, batch_first=True)
        self.head = nn.Linear(h, v)
        nn.init.normal_(self.embed.weight, std=e**-0.5)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def encode(self, x: Tensor) -> Tensor:
        ids, lengths = trim(x)
        _, state = self.encoder_rnn(pack(self.embed(ids), lengths))  # (B, T) -> h_n (layers, B, hidden)
        h_last = (state[0] if self.is_lstm else state)[-1]
        return self.code_act(self.to_code(h_last))  # -> (B, latent_dim)

    def _initial_state(self, z: Tensor):
        n, h = self.config.num_layers, self.config.hidden
        s = self.to_state(z).reshape(z.shape[0], -1, n, h).permute(1, 2, 0, 3)  # (1 or 2, layers, B, h)
        h0 = torch.tanh(s[0]).contiguous()
        return (h0, s[1].contiguous()) if self.is_lstm else h0

    def _step(self, tokens: Tensor, z: Tensor, state):
        """One decoder step: previous tokens (B,) and code (B, L) -> hidden (B, hidden), state."""
        inp = torch.cat([self.embed(tokens), z], 1).unsqueeze(1)  # (B, 1, E + L)
        out, state = self.decoder_rnn(inp, state)
        return out[:, 0], state

    @staticmethod
    def targets(ids: Tensor, lengths: Tensor) -> Tensor:
        """The decoder's targets: each sentence followed by <eos>, shape (B, T + 1), PAD after."""
        tgt = F.pad(ids, (0, 1), value=PAD)
        tgt[torch.arange(len(ids), device=ids.device), lengths] = EOS
        return tgt

    def decoder_states(self, z: Tensor, ids: Tensor, lengths: Tensor) -> Tensor:
        """Decoder hidden states (B, T + 1, hidden) reading <bos> + the sentence (teacher forcing).

        In training with ``teacher_forcing < 1``, each step reads the true previous token with that
        probability and the model's own greedy prediction otherwise (scheduled sampling).
        """
        prev = F.pad(ids, (1, 0), value=BOS)  # (B, T + 1): <bos>, w_1, ..., w_T
        if self.training and self.config.word_dropout:
            drop = torch.rand(prev.shape, device=prev.device) < self.config.word_dropout
            prev = prev.masked_fill(drop & (prev > EOS), UNK)
        state = self._initial_state(z)
        if not (self.training and self.config.teacher_forcing < 1):
            steps = torch.cat([self.embed(prev), z.unsqueeze(1).expand(-1, prev.shape[1], -1)], 2)
            out, _ = self.decoder_rnn(steps, state)  # one batched call over the whole sentence
            return out
        outs, tok = [], prev[:, 0]
        for t in range(prev.shape[1]):
            h, state = self._step(tok, z, state)
            outs.append(h)
            if t + 1 < prev.shape[1]:
                with torch.no_grad():
                    guess = self._logits_no_specials(self.head(h)).argmax(1)
                use_true = torch.rand(len(ids), device=ids.device) < self.config.teacher_forcing
                tok = torch.where(use_true, prev[:, t + 1], guess)
        return torch.stack(outs, 1)

    def forward(self, x: Tensor):
        """Teacher-forced logits (B, T + 1, vocab_size) of the sentence and its <eos>."""
        ids, lengths = trim(x)
        z = self.encode(ids)
        return self.head(self.decoder_states(z, ids, lengths))

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy of every next token (and <eos>), averaged over the tokens of the batch."""
        ids, lengths = trim(batch[0])
        z = self.encode(ids)
        out = self.decoder_states(z, ids, lengths)  # (B, T + 1, hidden)
        tgt = self.targets(ids, lengths)
        mask = tgt != PAD
        logits = self.head(out[mask]).float()  # only real positions: (n_tokens, vocab)
        ce = F.cross_entropy(logits, tgt[mask])
        acc = (logits.argmax(1) == tgt[mask]).float().mean()
        return {"loss": ce, "recon": ce, "token_accuracy": acc.detach()}

    @staticmethod
    def _logits_no_specials(logits: Tensor) -> Tensor:
        """Padding and <bos> are never generated."""
        logits = logits.clone()
        logits[..., PAD] = -math.inf
        logits[..., BOS] = -math.inf
        return logits

    def _next_logp(self, zk: Tensor):
        """The decoder step of :mod:`.decoding` for codes ``zk``: (tokens, state) -> (log-probs, state)."""

        def step(tok: Tensor, state):
            h, state = self._step(tok, zk, state)
            return F.log_softmax(self._logits_no_specials(self.head(h)).float(), -1), state

        return step

    @torch.no_grad()
    def decode(self, z: Tensor, max_len: int | None = None) -> Tensor:
        """Greedy decoding: codes (B, L) -> ids (B, T), cut at <eos> and right-padded with PAD."""
        steps = (max_len or self.max_len) + 1
        return decoding.greedy_decode(self._next_logp(z), self._initial_state(z), len(z), steps, z.device)

    @torch.no_grad()
    def beam_decode(self, z: Tensor, beam: int = 5, max_len: int | None = None) -> Tensor:
        """Beam search: the most probable sentence under the decoder, ids (B, T) as :meth:`decode`.

        Batched over sentences and beams; a beam that has emitted <eos> keeps its score. With
        ``beam=1`` this is greedy decoding.
        """
        if beam < 1:
            raise ConfigError(f"beam must be >= 1, got {beam}")
        k = min(beam, self.config.vocab_size - 2)
        zk = z.repeat_interleave(k, 0)  # (B*K, L)
        steps = (max_len or self.max_len) + 1
        return decoding.beam_decode(
            self._next_logp(zk), self._initial_state(zk), len(z), k, self.config.vocab_size, steps, z.device
        )

    def reconstruct(self, x: Tensor, beam: int = 1) -> Tensor:
        """Ids of the decoded sentences (greedy, or beam search with ``beam > 1``)."""
        z = self.encode(x)
        return self.decode(z) if beam == 1 else self.beam_decode(z, beam)


# -- recursive autoencoder ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RecursiveAEConfig:
    input_shape: tuple[int, ...] = (60,)  # (max_len,): tokens per sentence (longer ones are truncated)
    vocab_size: int = 1000  # set from the vocabulary by SentimentRAE
    embed_dim: int = 50  # d: word and node vectors (Socher et al. 2011 use 50)
    n_classes: int = 2
    alpha: float = 0.2  # weight of the reconstruction error; 1 - alpha weighs the cross-entropy
    weighted: bool = True  # weigh each child's reconstruction by the number of words under it
    normalize: bool = True  # node codes scaled to unit length (stops codes shrinking to fit)
    leaf_labels: bool = True  # the sentiment softmax also on the word nodes, not only on merges
    init_std: float = 0.05  # random initial word vectors ~ N(0, init_std^2)
    # while training, each word is replaced by <unk> with this probability (a regulariser for
    # models that average word vectors: Iyyer et al. 2015); it also trains the <unk> vector
    word_dropout: float = 0.0

    def __post_init__(self) -> None:
        _check_text_config("recursive_ae", self)
        if not 0 <= self.word_dropout < 1:
            raise ConfigError(f"word_dropout must be in [0, 1), got {self.word_dropout}")
        if self.embed_dim < 1 or self.n_classes < 2:
            raise ConfigError(f"embed_dim must be >= 1 and n_classes >= 2, got {self.embed_dim}, {self.n_classes}")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.init_std > 0:
            raise ConfigError(f"init_std must be > 0, got {self.init_std}")


@dataclass(frozen=True)
class Forest:
    """The greedy trees of a batch (merge ``s`` of sentence ``b`` is column ``s``)."""

    leaves: Tensor  # (B, T, d) word vectors
    nodes: Tensor  # (B, T - 1, d) merged node codes, in merge order (zeros where inactive)
    active: Tensor  # (B, T - 1) bool: merge s happened for sentence b (s < length - 1)
    recon: Tensor  # (B, T - 1) (weighted) reconstruction error of each merge, 0 where inactive
    positions: Tensor  # (B, T - 1) long: index k of the merged pair (k, k + 1) in the current sequence
    lengths: Tensor  # (B,) words per sentence
    root: Tensor  # (B, d) the top node (the word itself for a one-word sentence)

    def leaf_mask(self) -> Tensor:
        return torch.arange(self.leaves.shape[1], device=self.leaves.device) < self.lengths.unsqueeze(1)

    def mean_node(self) -> Tensor:
        """Average of all 2n - 1 node vectors (words and merges) per sentence, (B, d)."""
        total = (self.leaves * self.leaf_mask().unsqueeze(2)).sum(1) + (self.nodes * self.active.unsqueeze(2)).sum(1)
        return total / (2 * self.lengths - 1).clamp(min=1).unsqueeze(1).to(total.dtype)


@register_model(
    "recursive_ae",
    presets={
        "socher2011": dict(embed_dim=50, alpha=0.2, weighted=True, normalize=True),
        "unsupervised": dict(alpha=1.0),
    },
)
class RecursiveAE(TokenModel):
    """Semi-supervised recursive autoencoder (Socher et al. 2011): greedy trees, sentiment per node."""

    Config = RecursiveAEConfig

    def __init__(self, config: RecursiveAEConfig) -> None:
        super().__init__(config)
        d = config.embed_dim
        self.embed = nn.Embedding(config.vocab_size, d, padding_idx=PAD)
        self.enc = nn.Linear(2 * d, d)  # W(1): [c1; c2] -> p
        self.dec = nn.Linear(d, 2 * d)  # W(2): p -> [c1'; c2']
        self.label = nn.Linear(d, config.n_classes)  # W(label): softmax on every node
        nn.init.normal_(self.embed.weight, std=config.init_std)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        for m in (self.enc, self.dec, self.label):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (2 * self.config.embed_dim,)

    # -- one merge ------------------------------------------------------------------------------
    def merge(self, c1: Tensor, c2: Tensor, n1: Tensor, n2: Tensor) -> tuple[Tensor, Tensor]:
        """Parent codes and reconstruction errors of children pairs: (..., d) x2 -> (..., d), (...).

        ``n1``, ``n2`` count the words under each child: the weighted error is
        ``n1/(n1+n2) |c1 - c1'|^2 + n2/(n1+n2) |c2 - c2'|^2``.
        """
        p = torch.tanh(self.enc(torch.cat([c1, c2], -1)))
        if self.config.normalize:
            p = p / p.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        r1, r2 = self.dec(p).chunk(2, -1)
        e1, e2 = (r1 - c1).pow(2).sum(-1), (r2 - c2).pow(2).sum(-1)
        if self.config.weighted:
            w1 = n1 / (n1 + n2)
            return p, w1 * e1 + (1 - w1) * e2
        return p, 0.5 * (e1 + e2)

    def decode(self, p: Tensor) -> Tensor:
        """The reconstruction of a node's two children: (B, d) -> (B, 2, d)."""
        return self.dec(p).unflatten(-1, (2, self.config.embed_dim))

    # -- greedy trees, batched over sentences ---------------------------------------------------
    def build_trees(self, x: Tensor) -> Forest:
        """Greedy trees of a batch of id rows (B, T): T - 1 batched merge steps.

        At each step every sentence merges the adjacent pair with the lowest reconstruction
        error. Candidate errors are kept in a (B, width - 1) table: after a merge only the two
        pairs next to the new node change, so each step recomputes two candidates per sentence,
        not all of them. The choice is made without gradients; the chosen merges are computed
        again with gradients, so training backpropagates through the chosen tree.
        """
        ids, lengths = trim(x)
        b, t = ids.shape
        d = self.config.embed_dim
        dev = ids.device
        leaves = self.embed(ids)  # (B, T, d)
        h = leaves  # the current sequence of subtree codes, (B, width, d)
        # words under each subtree, (B, width); 1 on padding too, so that no weight is 0/0 (a NaN
        # there would survive the masking of inactive merges and poison the loss and gradients)
        count = torch.ones(b, t, dtype=leaves.dtype, device=dev)
        cur = lengths.clone()  # current sequence length per sentence
        inf = torch.tensor(math.inf, dtype=leaves.dtype, device=dev)
        rows = torch.arange(b, device=dev)
        nodes, errs, actives, positions = [], [], [], []
        with torch.no_grad():
            hd = h.detach()
            _, score = self.merge(hd[:, :-1], hd[:, 1:], count[:, :-1], count[:, 1:])  # (B, T - 1)
            pair = torch.arange(t - 1, device=dev)
            score = torch.where(pair + 1 < cur.unsqueeze(1), score, inf)
        for _ in range(t - 1):
            width = h.shape[1]
            active = cur >= 2
            if not bool(active.any()):
                break
            # inactive sentences "merge" the last pair, which is padding for them and is then dropped
            k = torch.where(active, score.argmin(1), torch.full_like(cur, width - 2))
            kk = torch.stack([k, k + 1], 1)  # (B, 2)
            c1, c2 = h.gather(1, kk.unsqueeze(2).expand(-1, -1, d)).unbind(1)  # (B, d) each, with gradients
            n1, n2 = count.gather(1, kk).unbind(1)
            p, err = self.merge(c1, c2, n1, n2)
            j = torch.arange(width - 1, device=dev).unsqueeze(0)  # positions after the merge
            src = j + (j > k.unsqueeze(1)).long()  # where each position's subtree was before
            at_k = (j == k.unsqueeze(1)) & active.unsqueeze(1)
            src = torch.where(at_k, width, src)  # the new node, appended at index `width` below
            # one gather from [sequence; new node]: cheaper to differentiate than gather + where
            h = torch.cat([h, p.unsqueeze(1)], 1).gather(1, src.unsqueeze(2).expand(-1, -1, d))
            count = torch.cat([count, (n1 + n2).unsqueeze(1)], 1).gather(1, src)
            cur = cur - active.long()
            on = active.to(p.dtype)
            nodes.append(p * on.unsqueeze(1))
            errs.append(err * on)
            actives.append(active)
            positions.append(k)
            if width - 1 < 2:
                continue
            with torch.no_grad():  # update the candidate table: drop pair k, recompute k - 1 and k
                jj = torch.arange(width - 2, device=dev).unsqueeze(0)
                score = score.gather(1, jj + (jj >= k.unsqueeze(1)).long())
                hd = h.detach()
                left = (k - 1).clamp(min=0)
                right = k.clamp(max=width - 3)
                both = torch.stack([left, right], 1)  # (B, 2) first index of each new pair
                _, new = self.merge(
                    hd[rows.unsqueeze(1), both], hd[rows.unsqueeze(1), both + 1],
                    count[rows.unsqueeze(1), both], count[rows.unsqueeze(1), both + 1],
                )  # (B, 2)
                act = active.unsqueeze(1)
                score = torch.where((jj == (k - 1).unsqueeze(1)) & act, new[:, :1], score)
                score = torch.where((jj == k.unsqueeze(1)) & act, new[:, 1:], score)
                score = torch.where(jj + 1 < cur.unsqueeze(1), score, inf)
        steps = max(t - 1, 0)
        if nodes:
            pad = steps - len(nodes)
            node_t = F.pad(torch.stack(nodes, 1), (0, 0, 0, pad))
            err_t = F.pad(torch.stack(errs, 1), (0, pad))
            act_t = F.pad(torch.stack(actives, 1), (0, pad), value=False)
            pos_t = F.pad(torch.stack(positions, 1), (0, pad))
        else:
            node_t = leaves.new_zeros(b, steps, d)
            err_t = leaves.new_zeros(b, steps)
            act_t = torch.zeros(b, steps, dtype=torch.bool, device=dev)
            pos_t = torch.zeros(b, steps, dtype=torch.long, device=dev)
        return Forest(leaves, node_t, act_t, err_t, pos_t, lengths, h[:, 0])

    # -- the autoencoder contract ----------------------------------------------------------------
    def features(self, forest: Forest) -> Tensor:
        """Sentence representation: [top node; average of all nodes], (B, 2d)."""
        return torch.cat([forest.root, forest.mean_node()], 1)

    def encode(self, x: Tensor) -> Tensor:
        """Ids (B, T) -> sentence representations (B, 2d)."""
        return self.features(self.build_trees(x))

    def forward(self, x: Tensor) -> Tensor:
        """Sentiment logits of each sentence's top node, (B, n_classes)."""
        return self.label(self.build_trees(x).root)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Socher et al.'s objective per sentence, averaged over the batch.

        Each merge adds ``alpha * E_rec + (1 - alpha) * E_ce`` (E_ce: cross-entropy of the
        node's softmax against the sentence label); with ``leaf_labels`` the words add
        ``(1 - alpha) * E_ce`` too. With targets equal to the inputs (no labels) only the
        reconstruction is trained.
        """
        x, y = batch
        if self.training and self.config.word_dropout:
            x, _ = trim(x)
            drop = (torch.rand(x.shape, device=x.device) < self.config.word_dropout) & (x != PAD)
            x = x.masked_fill(drop, UNK)
        forest = self.build_trees(x)
        act = forest.active.to(forest.recon.dtype)
        rec = (forest.recon * act).sum(1)  # (B,)
        n_merges = act.sum().clamp(min=1)
        terms = {"recon": (forest.recon * act).sum() / n_merges}
        if y is None or y.ndim != 1 or y.is_floating_point():  # unlabelled: an autoencoder only
            terms["loss"] = rec.mean()
            return terms
        y = y.long()
        k = self.config.n_classes
        node_ce = F.cross_entropy(
            self.label(forest.nodes).float().reshape(-1, k), y.repeat_interleave(forest.nodes.shape[1]),
            reduction="none",
        ).view_as(act)
        ce = (node_ce * act).sum(1)
        n_ce = act.sum(1)
        if self.config.leaf_labels:
            mask = forest.leaf_mask().to(act.dtype)
            leaf_ce = F.cross_entropy(
                self.label(forest.leaves).float().reshape(-1, k), y.repeat_interleave(forest.leaves.shape[1]),
                reduction="none",
            ).view_as(mask)
            ce = ce + (leaf_ce * mask).sum(1)
            n_ce = n_ce + mask.sum(1)
        alpha = self.config.alpha
        terms["ce"] = ce.sum() / n_ce.sum().clamp(min=1)
        terms["loss"] = (alpha * rec + (1 - alpha) * ce).mean()
        with torch.no_grad():
            terms["accuracy"] = (self.label(forest.root).argmax(1) == y).float().mean()
        return terms
