"""Train state, optimizer and freezing, created directly sharded on the mesh.

    abstract = eval_shape(init)                 # boxed params carry logical axis names
    shardings = logical_to_mesh(partition specs)  # one rules table
    state = jit(init, out_shardings=shardings)(rng)

Stages freeze components by path prefix (`trainable`); frozen leaves get zero updates
and no optimizer moments. Non-finite gradients skip the update and are counted
(`finite_guard`, `apply_update`); the host loop stops after too many in a row.
"""

import dataclasses
import re
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from fun_asr_jax.parallel import sharding as sharding_lib


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  ema: Any = None  # moving average of params when optim.ema_decay > 0 (what gets exported)


def path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def trainable_mask(params, trainable: tuple[str, ...]):
  """True for leaves whose path matches a prefix in `trainable`.

  A prefix is a path start ('adaptor', 'llm') or 'X/lora' for the LoRA leaves under X;
  ('all',) trains everything.
  """
  def is_trainable(path, _):
    p = path_str(path)
    for t in trainable:
      if t == "all":
        return True
      if t.endswith("/lora"):
        if p.startswith(t[: -len("/lora")] + "/") and re.search(r"/lora_[ab]$", p):
          return True
      elif p == t or p.startswith(t + "/"):
        return True
    return False
  return jax.tree_util.tree_map_with_path(is_trainable, params)


def freeze(params, mask):
  """`params` with every leaf outside `mask` behind stop_gradient.

  Differentiating this instead of `params` means frozen weights get symbolic-zero gradients:
  no weight-gradient matmuls for them, and no backward pass at all through a frozen part
  nothing trainable sits below (the encoder in s1, s3 and GRPO). The optimizer still masks.
  """
  if mask is None:
    return params
  return jax.tree.map(lambda p, m: p if m else jax.lax.stop_gradient(p), params, mask)


def ema_decay_at(decay: float, step):
  """The EMA decay at `step`: ramps up as (1 + t) / (10 + t) so early weights fade fast."""
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def update_ema(ema, params, decay: float, step, mask=None):
  """ema <- d·ema + (1 - d)·params; frozen leaves (mask False) just track params exactly."""
  if ema is None:
    return None
  d = ema_decay_at(decay, step)
  mask = jax.tree.map(lambda _: True, params) if mask is None else mask
  return jax.tree.map(lambda e, p, m: (d * e + (1.0 - d) * p).astype(p.dtype) if m else p,
                      ema, params, mask)


def with_fresh_ema(state: TrainState) -> TrainState:
  """The EMA restarted from the current params (after init or init_from)."""
  if state.ema is None:
    return state
  return state.replace(ema=jax.tree.map(jnp.copy, state.params))


def schedule(cfg) -> optax.Schedule:
  """Linear warmup then cosine (or constant) decay."""
  o = cfg.optim
  warm = optax.linear_schedule(0.0, o.lr, max(1, o.warmup_steps))
  if o.decay == "cosine":
    decay = optax.cosine_decay_schedule(o.lr, max(1, cfg.train.num_steps - o.warmup_steps),
                                        alpha=o.end_lr_ratio)
  elif o.decay == "constant":
    decay = optax.constant_schedule(o.lr)
  else:
    raise ValueError(f"config.optim.decay={o.decay!r}: expected 'cosine' or 'constant'")
  return optax.join_schedules([warm, decay], [o.warmup_steps])


class FiniteGuard(NamedTuple):
  """`optax.apply_if_finite(inner, max_consecutive_errors)` (same `init`, `update` and
  state), carrying `inner` so that `apply_update` can guard the whole parameter update.

  apply_if_finite decides inside a `lax.cond` whose output is the update tree, which XLA
  then must materialise before adding it to the parameters; on CPU that made a standalone
  AdamW update 2.7-3.3x slower than unguarded, and the optimizer most of a 0.8B model's
  training step (bench/RESULTS.md, issue 8).
  """
  init: Any
  update: Any
  inner: optax.GradientTransformation
  max_consecutive_errors: int


def finite_guard(inner, max_consecutive_errors: int) -> FiniteGuard:
  wrapped = optax.apply_if_finite(inner, max_consecutive_errors)
  return FiniteGuard(wrapped.init, wrapped.update, inner, max_consecutive_errors)


def apply_update(tx, grads, opt_state, params):
  """`(params, opt_state)` after one step of `tx`. With a `FiniteGuard` the cond holds the
  inner update and its addition to the parameters together (one fused pass per leaf; a
  skipped step passes params and state through), by apply_if_finite's rule."""
  if not isinstance(tx, FiniteGuard):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  count = jnp.where(finite, jnp.zeros([], jnp.int32),
                    optax.safe_increment(opt_state.notfinite_count))

  def step(carry):
    p, inner_state = carry
    updates, inner_state = tx.inner.update(grads, inner_state, p)
    return optax.apply_updates(p, updates), inner_state

  params, inner_state = jax.lax.cond(finite | (count > tx.max_consecutive_errors), step,
                                     lambda carry: carry, (params, opt_state.inner_state))
  total = jnp.where(finite, opt_state.total_notfinite,
                    optax.safe_increment(opt_state.total_notfinite))
  return params, optax.ApplyIfFiniteState(notfinite_count=count, last_finite=finite,
                                          total_notfinite=total, inner_state=inner_state)


def make_optimizer(cfg, mask) -> optax.GradientTransformation:
  o = cfg.optim
  inner = optax.chain(
      optax.clip_by_global_norm(o.clip_norm) if o.clip_norm > 0 else optax.identity(),
      optax.adamw(schedule(cfg), b1=o.b1, b2=o.b2, eps=1e-8, weight_decay=o.weight_decay))
  labels = jax.tree.map(lambda m: "train" if m else "freeze", mask)
  tx = optax.multi_transform({"train": inner, "freeze": optax.set_to_zero()}, labels)
  tx = finite_guard(tx, max_consecutive_errors=1_000_000)
  if o.grad_accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=o.grad_accum)
  return tx


def nonfinite_counts(opt_state) -> tuple[jax.Array, jax.Array]:
  """(consecutive, total) skipped updates from the apply_if_finite state."""
  st = opt_state.inner_opt_state if isinstance(opt_state, optax.MultiStepsState) else opt_state
  return st.notfinite_count, st.total_notfinite


@dataclasses.dataclass
class StateFactory:
  """Builds the sharded train state for a model init function and an optimizer."""
  init_params: Any  # rng -> boxed params
  tx: optax.GradientTransformation
  mesh: jax.sharding.Mesh
  ema: bool = False  # keep a parameter EMA (sharded like the params)

  def _boxed(self, rng):
    """State whose params and optimizer moments keep their logical-axis boxes."""
    rng, init_rng = jax.random.split(rng)
    boxed = self.init_params(init_rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=boxed,
                      opt_state=self.tx.init(boxed), rng=rng,
                      ema=jax.tree.map(lambda x: x + 0, boxed) if self.ema else None)

  def _init(self, rng):
    return nn.meta.unbox(self._boxed(rng))

  def abstract(self):
    """(abstract unboxed state, its NamedShardings) without allocating anything."""
    boxed = jax.eval_shape(self._boxed, jax.random.key(0))
    shardings = sharding_lib.mesh_shardings(boxed, self.mesh)
    return nn.meta.unbox(boxed), shardings

  def create(self, rng):
    _, shardings = self.abstract()
    state = jax.jit(self._init, out_shardings=shardings)(rng)
    return with_fresh_ema(state), shardings
