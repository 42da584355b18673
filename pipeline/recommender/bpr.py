"""Matrix factorisation with item biases, trained with Bayesian Personalised Ranking (Rendle et al., 2009).

score(u, i) = <user_u, item_i> + bias_i. Each step takes a batch of observed (user, item) pairs
and ``negatives_per_positive`` items drawn uniformly from the catalogue (a draw that hits an item
the user did buy is redrawn once; the rare second hit is kept as noise), and minimises
``-log sigmoid(score(u, i) - score(u, j))`` plus an L2 penalty on the rows the batch touched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix
from pipeline.seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FactorModel:
    """A trained model as plain arrays: what evaluation, quantization and export consume."""

    user_vectors: np.ndarray  # float32 [n_users, dim]
    item_vectors: np.ndarray  # float32 [n_items, dim]
    item_bias: np.ndarray  # float32 [n_items]

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.user_vectors[users] @ self.item_vectors.T + self.item_bias


@dataclass(frozen=True)
class TrainingReport:
    seconds: float
    epochs: int
    pairs: int
    epoch_losses: list[float]


class BprFactorization(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, init_std: float) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.users.weight, std=init_std)
        nn.init.normal_(self.items.weight, std=init_std)
        nn.init.zeros_(self.item_bias.weight)

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, l2: float) -> torch.Tensor:
        """users, positives: [B]; negatives: [B, n_neg]."""
        u = self.users(users)  # [B, d]
        i = self.items(positives)  # [B, d]
        j = self.items(negatives)  # [B, n, d]
        pos = (u * i).sum(-1) + self.item_bias(positives).squeeze(-1)
        neg = torch.einsum("bd,bnd->bn", u, j) + self.item_bias(negatives).squeeze(-1)
        ranking = -nn.functional.logsigmoid(pos.unsqueeze(1) - neg).mean()
        penalty = (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum() / negatives.shape[1]) / users.shape[0]
        return ranking + l2 * penalty

    def export(self) -> FactorModel:
        with torch.no_grad():
            return FactorModel(
                user_vectors=self.users.weight.detach().numpy().astype(np.float32).copy(),
                item_vectors=self.items.weight.detach().numpy().astype(np.float32).copy(),
                item_bias=self.item_bias.weight.detach().numpy().reshape(-1).astype(np.float32).copy(),
            )


def sample_negatives(
    rng: np.random.Generator, users: np.ndarray, pair_keys: np.ndarray, n_items: int, per_positive: int
) -> np.ndarray:
    """Uniform negatives [B, per_positive]; draws that hit a purchased item are redrawn once."""
    negatives = rng.integers(0, n_items, size=(len(users), per_positive))
    keys = users[:, None] * n_items + negatives
    pos = np.searchsorted(pair_keys, keys).clip(max=len(pair_keys) - 1)
    hit = pair_keys[pos] == keys
    negatives[hit] = rng.integers(0, n_items, size=int(hit.sum()))
    return negatives


def train_bpr(
    matrix: UserItemMatrix, config: RecommenderPipelineSettings, label: str = "bpr"
) -> tuple[FactorModel, TrainingReport]:
    rng = seed_everything(config.seed)
    torch.set_num_threads(config.train_threads)
    model = BprFactorization(matrix.n_users, matrix.n_items, config.embedding_dim, config.init_std)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

    pair_users = matrix.users_of_pairs()
    pair_items = matrix.indices.astype(np.int64)
    pair_keys = matrix.pair_keys()
    n_pairs = len(pair_users)
    steps_per_epoch = -(-n_pairs // config.batch_size)

    losses: list[float] = []
    started = time.perf_counter()
    progress = tqdm(range(config.epochs), desc=f"train {label}", unit="epoch", leave=False)
    for _ in progress:
        order = rng.permutation(n_pairs)
        total = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            users = pair_users[batch]
            negatives = sample_negatives(rng, users, pair_keys, matrix.n_items, config.negatives_per_positive)
            loss = model.loss(
                torch.from_numpy(users),
                torch.from_numpy(pair_items[batch]),
                torch.from_numpy(negatives),
                config.l2_reg,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / n_pairs)
        progress.set_postfix(loss=f"{losses[-1]:.4f}")
    seconds = time.perf_counter() - started
    log.info(
        "trained %s: %d pairs, %d epochs, %.1f s, final loss %.4f", label, n_pairs, config.epochs, seconds, losses[-1]
    )
    return model.export(), TrainingReport(seconds=seconds, epochs=config.epochs, pairs=n_pairs, epoch_losses=losses)
