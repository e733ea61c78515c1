"""What each operation of a compiled XLA program is: its kind, training pass and model module.

A profiler trace names operations by their HLO instruction (``ynn_fusion.691``, ``fusion.12``),
which says nothing about what they compute. The compiled program's text
(``jax.jit(f).lower(...).compile().as_text()``) does: each instruction has an opcode, the
computations it calls (a fusion's body) and the JAX source it came from (``op_name`` metadata).
`parse_hlo` reads that text into one `HloOp` per instruction, so a profile can be read as "the
backward pass of the decoder's output projection takes 14%" instead of by instruction names.

    >>> source = "jit(f)/transpose(jvp(M))/M.decode/decoder/layers_3/mlp/wo/dot_general"
    >>> text = '''
    ... %fc (p0: f32[4,8], p1: f32[8,16]) -> f32[4,16] {
    ...   %p0 = f32[4,8]{1,0} parameter(0)
    ...   %p1 = f32[8,16]{1,0} parameter(1)
    ...   ROOT %dot.2 = f32[4,16]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}
    ... }
    ... ENTRY %main (x: f32[4,8], w: f32[8,16]) -> f32[4,16] {
    ...   %x = f32[4,8]{1,0} parameter(0)
    ...   %w = f32[8,16]{1,0} parameter(1)
    ...   ROOT %fusion.7 = f32[4,16]{1,0} fusion(%x, %w), calls=%fc, metadata={op_name="SOURCE"}
    ... }'''.replace("SOURCE", source)
    >>> op = parse_hlo(text)["fusion.7"]
    >>> op.category, op.phase, op.module, op.shape
    ('matmul', 'backward', 'decoder/layers_*/mlp/wo', 'f32[4,16]')
"""

from __future__ import annotations

import dataclasses
import re

COLLECTIVES = frozenset({"all-reduce", "all-gather", "reduce-scatter", "all-to-all",
                         "collective-permute", "collective-broadcast", "ragged-all-to-all"})
# Instructions that only move, reshape or select data (no arithmetic on it).
DATA_MOVEMENT = frozenset({
    "parameter", "constant", "copy", "transpose", "bitcast", "reshape", "broadcast", "slice",
    "dynamic-slice", "dynamic-update-slice", "concatenate", "pad", "gather", "get-tuple-element",
    "tuple", "iota", "reverse", "copy-start", "copy-done", "bitcast-convert"})
REDUCTIONS = frozenset({"reduce", "reduce-window", "select-and-scatter", "scatter", "sort"})
MATMULS = frozenset({"dot", "convolution", "ragged-dot"})
# custom-call targets: fused attention (cuDNN, Pallas/Mosaic flash kernels) and library GEMMs.
_ATTENTION_TARGET = re.compile(r"fmha|flash|attention", re.I)
_MATMUL_TARGET = re.compile(r"gemm|matmul|cublas", re.I)
# When a fusion holds several kinds, the first of these it holds names it.
PRECEDENCE = ("collective", "attention", "matmul", "reduce", "elementwise", "copy")

_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"([a-z][\w\-]*)\(")
_CALLED = re.compile(r"\b(?:calls|to_apply|body|condition)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TARGET = re.compile(r'custom_call_target="([^"]*)"')
_OP_NAME = re.compile(r'op_name="((?:[^"\\]|\\.)*)"')
_INDEX = re.compile(r"^(.*_)?\d+$")  # "layers_3", "3": one layer of a stack
# Scopes that transformations add around a module's ops (a scanned or rematerialised layer).
_TRANSFORM_SCOPES = frozenset({"while", "body", "cond", "closed_call", "checkpoint", "remat",
                               "rematted_computation", "pjit", "core_call", "custom_jvp_call",
                               "custom_vjp_call", "custom_vjp_call_jaxpr"})


@dataclasses.dataclass(frozen=True)
class HloOp:
    """One HLO instruction, as a profile reads it.

    Attributes:
      name: the instruction's name, which the profiler's events carry (``args.hlo_op``).
      opcode: ``fusion``, ``dot``, ``custom-call``, ...
      shape: the result's shape, e.g. ``f32[912,32128]`` (layout dropped).
      category: the kind of work, from the opcode and, for a fusion or call, the instructions of
        the computations it calls: one of `PRECEDENCE`, or "other".
      phase: "forward", "backward" (the gradient's transpose) or "update" (outside the
        differentiated function: the optimizer, gradient norms, the loss's bookkeeping).
      module: the model module it came from, layer indices as ``*`` (``decoder/layers_*/mlp/wo``);
        "" where the op_name names none.
      source: the full JAX ``op_name``.
    """

    name: str
    opcode: str
    shape: str
    category: str
    phase: str
    module: str
    source: str


def phase_of(op_name: str) -> str:
    """The training pass an ``op_name`` belongs to (see `HloOp.phase`)."""
    if "transpose(jvp(" in op_name:
        return "backward"
    return "forward" if "jvp(" in op_name else "update"


def module_of(op_name: str, depth: int = 4) -> str:
    """The model module of an ``op_name``: its scopes inside the model, layer indices as ``*``,
    at most `depth` named scopes.

    >>> module_of("jit(train_step)/jvp(T5)/decoder/block/3/layer/2/DenseReluDense/wo/dot_general")
    'decoder/block/*/layer/*/DenseReluDense'
    >>> module_of("jit(train_step)/jvp(EncoderDecoder)/EncoderDecoder.encode/encoder/layers_0/"
    ...           "self_attention/bqhd,bkhd->bhqk/dot_general")
    'encoder/layers_*/self_attention'
    >>> module_of("jit(step)/jvp(M)/encoder/while/body/closed_call/layers/block/mlp/add_any")
    'encoder/layers/block/mlp'
    >>> module_of("jit(train_step)/mul")
    ''
    """
    parts = op_name.split("/")[:-1]  # the last part is the primitive (dot_general, add, ...)
    kept: list[str] = []
    named = 0
    for part in parts:
        # Wrappers (jit(...), jvp(...), a scan's while/body), Class.method scopes and einsum
        # specs are not modules.
        if ("(" in part or re.fullmatch(r"\w+\.\w+", part) or "," in part or "->" in part
                or part in _TRANSFORM_SCOPES):
            continue
        index = _INDEX.match(part)
        if index and index.group(1) is None:  # a bare index: one element of the scope before it
            kept.append("*")
            continue
        if named == depth:
            break
        kept.append(f"{index.group(1)}*" if index else part)
        named += 1
    return "/".join(kept)


def _split_shape(rest: str) -> tuple[str, str]:
    """(result shape without layout, the text after it) of an instruction's right-hand side."""
    if rest.startswith("("):  # a tuple shape: skip to its closing parenthesis
        depth = 0
        for i, char in enumerate(rest):
            depth += (char == "(") - (char == ")")
            if depth == 0:
                return rest[:i + 1], rest[i + 1:]
    shape, _, after = rest.partition(" ")
    return re.sub(r"\{[^}]*\}$", "", shape), after


def parse_hlo(text: str) -> dict[str, HloOp]:
    """Every instruction of an HLO module's text (``compiled.as_text()``) by name (module doc)."""
    computations: dict[str, list[tuple[str, str, str, list[str], str, str]]] = {}
    current: list | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header and not line.startswith(" "):
            current = computations.setdefault(header.group(1), [])
            continue
        if line.startswith("}"):
            current = None
            continue
        match = _INSTRUCTION.match(line)
        if current is None or match is None:
            continue
        name, rhs = match.groups()
        shape, after = _split_shape(rhs)
        opcode = _OPCODE.match(after.lstrip())
        if opcode is None:
            continue
        called = _CALLED.findall(after)
        for branches in _BRANCHES.findall(after):
            called += [b.strip().lstrip("%") for b in branches.split(",") if b.strip()]
        target = _TARGET.search(after)
        op_name = _OP_NAME.search(after)
        current.append((name, opcode.group(1), shape, called, target.group(1) if target else "",
                        op_name.group(1) if op_name else ""))

    kinds: dict[str, set[str]] = {}  # computation -> the kinds of work its instructions do

    def own_kind(opcode: str, target: str, called: list[str]) -> set[str]:
        base = opcode.removesuffix("-start").removesuffix("-done")
        if base in COLLECTIVES:
            return {"collective"}
        if opcode == "custom-call":
            if _ATTENTION_TARGET.search(target):
                return {"attention"}
            return {"matmul"} if _MATMUL_TARGET.search(target) else {"other"}
        if opcode in MATMULS:
            return {"matmul"}
        if opcode in REDUCTIONS:  # their `to_apply` is the combiner, not more work
            return {"reduce"}
        if called:  # a fusion, call, loop or conditional: what its computations do
            return set().union(*(computation_kinds(c) for c in called))
        if opcode in DATA_MOVEMENT:
            return {"copy"}
        return {"elementwise"}

    def computation_kinds(computation: str) -> set[str]:
        if computation not in kinds:
            kinds[computation] = set()  # guards against a cycle (none in valid HLO)
            kinds[computation] = set().union(set(), *(
                own_kind(opcode, target, called)
                for _, opcode, _, called, target, _ in computations.get(computation, [])))
        return kinds[computation]

    def category(found: set[str]) -> str:
        return next((kind for kind in PRECEDENCE if kind in found), "other")

    return {name: HloOp(name, opcode, shape, category(own_kind(opcode, target, called)),
                        phase_of(op_name), module_of(op_name), op_name)
            for instructions in computations.values()
            for name, opcode, shape, called, target, op_name in instructions}
