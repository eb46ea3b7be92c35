"""Weight import: `convert_folder(format, src, dst)` writes a model folder atomically."""

import os

from fun_asr_jax.convert import fun_asr_nano, hf_qwen3

FORMATS = ("hf_qwen3", "hf_fun_asr_nano", "funasr_nano")


def convert_folder(fmt: str, src: str, dst: str, overwrite: bool = False) -> str:
  """Imports `src` (layout `fmt`) into the model folder `dst`; returns a summary line."""
  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.models.describe import parameter_counts
  from fun_asr_jax.models.fun_asr import ModelConfig
  from fun_asr_jax.text.tokenizer import Tokenizer
  from fun_asr_jax.train import checkpoint
  if os.path.exists(dst) and not overwrite:
    raise FileExistsError(f"--dst={dst} already exists (use --overwrite to replace it)")
  if fmt == "hf_qwen3":
    llm_cfg, llm_params = hf_qwen3.load(src)
    cfg = ModelConfig(llm=llm_cfg)
    params, tok_dir, components = {"llm": llm_params}, src, ["llm"]
  elif fmt == "hf_fun_asr_nano":
    cfg, params, tok_dir = fun_asr_nano.load_hf(src)
    components = sorted(params)
  elif fmt == "funasr_nano":
    cfg, params, tok_dir = fun_asr_nano.load_funasr(src)
    components = sorted(params)
  else:
    raise ValueError(f"--format={fmt!r}: expected one of {', '.join(FORMATS)}")
  tokenizer = None
  if tok_dir and os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
    tokenizer = Tokenizer.from_folder(tok_dir)
  meta = {"source_format": fmt, "source": os.path.abspath(src), "components": components}
  checkpoint.save_model(dst, params, cfg, tokenizer=tokenizer, meta=meta, overwrite=overwrite)
  if fmt == "hf_qwen3":
    return f"{dst}: Qwen3 LLM ({llm_cfg.num_layers} layers, d={llm_cfg.hidden_size})"
  counts = parameter_counts(cfg)
  return (f"{dst}: {', '.join(components)}; {counts['total'] / 1e6:.1f}M parameters; "
          f"tokenizer {'yes' if tokenizer else 'no'}")


__all__ = ["FORMATS", "convert_folder"]
