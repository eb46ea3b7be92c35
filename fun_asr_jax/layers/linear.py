"""Linear layer with logical axis names, fp32 accumulation and optional LoRA.

One module for every projection in the codebase so that sharding, mixed precision and LoRA
are decided in one place. LoRA adds `x @ A @ B * alpha / r` with B initialised to zero, so a
freshly attached adapter leaves the function unchanged; A and B live beside the frozen
kernel in the same param tree and are selected for training by name (`lora_a`, `lora_b`).
"""

import functools
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp
import numpy as np

Dtype = Any
default_kernel_init = nn.initializers.lecun_normal()


def param_with_axes(module: nn.Module, name: str, init: Callable, shape: Sequence[int],
                    axes: Sequence[str | None], dtype: Dtype):
  """Declares a parameter whose partitioning metadata carries logical axis names."""
  return module.param(name, nn.with_logical_partitioning(init, tuple(axes)), tuple(shape), dtype)


def matmul(x, w, dtype: Dtype, out_major: bool = False):
  """`x @ w` in `dtype` with fp32 accumulation; result cast back to `dtype`. `out_major`:
  `w` is stored transposed, `[O, I]`. The output is named "linear" for the remat policies
  (layers/remat.py)."""
  y = _dot(x.astype(dtype), w.astype(dtype), out_major)
  return checkpoint_name(y, "linear").astype(dtype)


# The gradients are written out because XLA:CPU handles JAX's own transpose of the einsum
# badly: it fuses the cotangent's producers (e.g. SiLU's derivative) into a transposed copy
# feeding the weight-gradient matmul, a strided loop ~40x slower per element than a plain
# transpose (11 ms per LLM MLP in the small preset). Same products, same dtypes as JAX's rule;
# the small preset's training step 0.58 -> 0.47 s (bench/RESULTS.md, issue 8). Forward-mode
# differentiation (jax.jvp) is not defined through it; nothing here uses it.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dot(x, w, out_major: bool):  # [..., I], [I, O] or [O, I] -> [..., O] fp32
  return jnp.einsum("...i,oi->...o" if out_major else "...i,io->...o", x, w,
                    preferred_element_type=jnp.float32)


def _dot_fwd(x, w, out_major):
  return _dot(x, w, out_major), (x, w)


def _dot_bwd(out_major, res, g):  # g: [..., O] fp32
  x, w = res
  g = g.astype(x.dtype)
  x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])  # [N, I], [N, O]
  dx = jnp.einsum("...o,oi->...i" if out_major else "...o,io->...i", g, w,
                  preferred_element_type=jnp.float32)
  dw = jnp.einsum("ni,no->oi" if out_major else "ni,no->io", x2, g2,
                  preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_dot.defvjp(_dot_fwd, _dot_bwd)


class Linear(nn.Module):
  """`y = x W + b (+ LoRA)`; `axes` names the (input, output) logical axes of W.

  `out_major=True` stores W transposed as `kernel_t` `[O, I]` (torch's layout). On some
  CPUs a matmul with few rows runs up to 1.45x faster that way, on others slower
  (`out_major_is_faster`; decoding: bench/RESULTS.md, issue 8); decoders convert to it with
  `out_major_kernels` where it helps.
  """
  features: int
  axes: tuple[str, str]
  use_bias: bool = True
  out_major: bool = False
  lora_rank: int = 0
  lora_alpha: float = 1.0
  lora_dropout: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  kernel_init: Callable = default_kernel_init

  @nn.compact
  def __call__(self, x, deterministic: bool = True):  # [..., I] -> [..., O]
    if self.out_major:
      init = lambda rng, shape, dtype: self.kernel_init(rng, shape[::-1], dtype).T
      kernel = param_with_axes(self, "kernel_t", init, (self.features, x.shape[-1]),
                               self.axes[::-1], self.param_dtype)
    else:
      kernel = param_with_axes(self, "kernel", self.kernel_init,
                               (x.shape[-1], self.features), self.axes, self.param_dtype)
    y = matmul(x, kernel, self.dtype, self.out_major)
    if self.lora_rank > 0:
      a = param_with_axes(self, "lora_a", nn.initializers.he_uniform(),
                          (x.shape[-1], self.lora_rank), (self.axes[0], "lora_rank"),
                          self.param_dtype)
      b = param_with_axes(self, "lora_b", nn.initializers.zeros, (self.lora_rank, self.features),
                          ("lora_rank", self.axes[1]), self.param_dtype)
      h = x
      if self.lora_dropout > 0 and not deterministic:
        h = nn.Dropout(self.lora_dropout)(h, deterministic=False)
      y = y + matmul(matmul(h, a, self.dtype), b, self.dtype) * (self.lora_alpha / self.lora_rank)
    if self.use_bias:
      bias = param_with_axes(self, "bias", nn.initializers.zeros, (self.features,),
                             (self.axes[1],), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


def out_major_kernels(params):
  """A param tree with every Linear `kernel` `[I, O]` replaced by `kernel_t` `[O, I]` (the
  `out_major=True` layout); other leaves untouched."""
  if not isinstance(params, dict):
    return params
  return {("kernel_t" if k == "kernel" else k):
          (v.T if k == "kernel" else out_major_kernels(v)) for k, v in params.items()}


@functools.lru_cache(maxsize=None)
def out_major_is_faster(rows: int, features_in: int, features_out: int) -> bool:
  """Whether `x [rows, in] @ W` runs faster on this backend with W stored `[out, in]`.

  Measured once per shape and process. Which layout a CPU's matmul library prefers for
  few-row products differs between machines (1.4x one way on an Intel AVX-512 host, 1.3-2x
  the other way on an AMD one: bench/RESULTS.md, issue 8); other backends choose layouts
  themselves, so they keep `[in, out]`.
  """
  if jax.default_backend() != "cpu":
    return False
  times = {}
  with jax.ensure_compile_time_eval():  # also when a decoder converts inside its own jit
    x = jax.device_put(np.ones((rows, features_in), np.float32))
    for out_major in (False, True):
      shape = (features_out, features_in) if out_major else (features_in, features_out)
      weight = jax.device_put(np.full(shape, 1.0 / features_in, np.float32))
      f = jax.jit(functools.partial(matmul, dtype=jnp.float32, out_major=out_major))
      f(x, weight).block_until_ready()
      runs = []
      for _ in range(7):
        t = time.perf_counter()
        f(x, weight).block_until_ready()
        runs.append(time.perf_counter() - t)
      times[out_major] = sorted(runs)[3]
  return times[True] < times[False]


class LayerNorm(nn.Module):
  """LayerNorm over the last axis, statistics in fp32."""
  epsilon: float = 1e-5
  axis_name: str = "norm"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    scale = param_with_axes(self, "scale", nn.initializers.ones, (d,), (self.axis_name,),
                            self.param_dtype)
    bias = param_with_axes(self, "bias", nn.initializers.zeros, (d,), (self.axis_name,),
                           self.param_dtype)
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
    return y.astype(self.dtype)


class RMSNorm(nn.Module):
  """RMSNorm (Qwen3), statistics in fp32."""
  epsilon: float = 1e-6
  axis_name: str = "norm"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = param_with_axes(self, "scale", nn.initializers.ones, (x.shape[-1],),
                            (self.axis_name,), self.param_dtype)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True) + self.epsilon)
    return (y * scale).astype(self.dtype)
