"""HF interop: T5 v1.0/v1.1, BART, GPT-2 and BERT weights in and out of t2t (`t2t convert`).

    hf_files.py    HF model directories: config.json + safetensors, read and written with numpy
    mapping.py     codecs and links between HF tensors and our parameters; both conversions
    t5.py, bart.py, gpt2.py, bert.py   each HF model type's config mapping and tensor links
    layout.py      scanned <-> unscanned parameter trees
    convert.py     import_hf / export_hf and the config round-trip check
    checkpoint.py  params-only checkpoints (what import writes) and a run directory's parameters
    cli.py         `t2t convert import|export`

The conversion needs only numpy and `safetensors`; the logit-parity tests also need torch and
transformers<5.
"""

from t2t.interop.checkpoint import load_params, load_run_params, save_params
from t2t.interop.convert import (config_from_hf, config_to_hf, export_hf, from_hf_state,
                                 import_hf, to_hf_state)

__all__ = ["config_from_hf", "config_to_hf", "export_hf", "from_hf_state", "import_hf",
           "load_params", "load_run_params", "save_params", "to_hf_state"]
