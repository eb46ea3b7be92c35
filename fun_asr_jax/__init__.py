"""fun_asr_jax: LLM-based speech recognition (Fun-ASR style) in JAX.

`from fun_asr_jax import FunASR` is the inference API (`fun_asr_jax.inference.asr`); the
import is lazy so that training code does not pay for it.
"""


def __getattr__(name):
  if name == "FunASR":
    from fun_asr_jax.inference.asr import FunASR  # pylint: disable=import-outside-toplevel
    return FunASR
  raise AttributeError(f"module 'fun_asr_jax' has no attribute {name!r}")
