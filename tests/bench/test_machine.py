"""The machine record of every benchmark: which CPU, precisely enough to know its matmul peak."""

from t2t.bench.machine import cpu_description, cpu_summary, host

# Two processors of a Zen 4 host, as /proc/cpuinfo lists them (abridged).
CPUINFO = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC
stepping	: 1
flags		: fpu sse2 avx fma avx2 avx512f avx512dq avx512_bf16 avx512vl

processor	: 1
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC Other
stepping	: 1
flags		: fpu sse2 avx fma avx2 avx512f avx512dq avx512_bf16 avx512vl amx_tile
"""


def test_the_first_processor_names_family_model_and_vector_units():
    cpu = cpu_description(CPUINFO)
    assert cpu == {"cpu_model": "AMD EPYC", "cpu_vendor": "AuthenticAMD", "cpu_family": 25,
                   "cpu_model_number": 17, "cpu_stepping": 1,
                   "cpu_vector_flags": ["avx2", "fma", "avx512f", "avx512_bf16"]}
    assert cpu_summary(cpu) == "AMD EPYC (family 25, model 17; avx2 fma avx512f avx512_bf16)"


def test_without_cpuinfo_the_platform_names_the_cpu():
    cpu = cpu_description("")
    assert cpu["cpu_model"] and cpu["cpu_family"] is None and cpu["cpu_vector_flags"] == []
    assert cpu_summary(cpu) == cpu["cpu_model"]


def test_this_host_is_described():
    machine = host()
    assert machine["cpu_cores"] >= 1 and machine["python"] and machine["cpu_model"]
