"""The tpu_scripts' --dry-run output: the exact gcloud / sbatch / srun commands, and that nothing runs.

Every script is run with fixed arguments and --dry-run, with fake `gcloud`, `sbatch`, `srun`, `ssh`
and `scp` first on PATH that record any call (a call fails the test). Printed lines are parsed with
shlex, and the command that runs on the TPU workers (gcloud ssh --command=...) is parsed again.
No network, no cloud account; about a second in all.
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tpu_scripts"
SBATCH_SCRIPT = SCRIPTS / "slurm" / "t2t.sbatch"
FAKED = ("gcloud", "gsutil", "sbatch", "srun", "ssh", "scp")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "t5", "--zone=us-central2-b"]
SCP = ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
TRAIN_ARGS = [
    "--gin_file=models/t5_1_1/base.gin", "--gin_file=runs/pretrain.gin",
    "--gin_file=objectives/span_corruption.gin", "--gin_file=data/tfds_c4.gin",
    "--gin.MODEL_DIR=gs://bucket/t5_1_1_base", "--gin.BATCH_SIZE=128",
    "--gin.PARTITIONING='fsdp'", "--gin.MESH_SHAPE={'data': 1, 'fsdp': -1, 'tensor': 1}",
    "--gin.model_config.remat_policy=minimal",
]


class Sandbox:
    """A PATH whose gcloud/sbatch/srun/... only record that they were called."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.calls = tmp_path / "calls.log"
        for name in FAKED:
            fake = self.bin / name
            fake.write_text(f'#!/bin/sh\necho "{name} $*" >> "{self.calls}"\nexit 97\n')
            fake.chmod(0o755)
        (tmp_path / "tmp").mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("T2T_", "SLURM_"))}
        self.env.update(PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}",
                        TMPDIR=str(tmp_path / "tmp"), HOME=str(tmp_path))

    def run(self, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["bash", str(SCRIPTS / script), *args], cwd=self.dir,
                                env={**self.env, **(env or {})}, capture_output=True, text=True,
                                timeout=60)
        assert not self.calls.exists(), f"executed during a dry run: {self.calls.read_text()}"
        return result

    def commands(self, script: str, *args: str, env: dict | None = None) -> list[list[str]]:
        """The commands a dry run prints, each as its argv."""
        result = self.run(script, "--dry-run", *args, env=env)
        assert result.returncode == 0, result.stderr
        lines = [ln for ln in result.stdout.splitlines() if ln and not ln.startswith("#")]
        return [shlex.split(ln) for ln in lines]


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


def remote(argv: list[str]) -> str:
    """The command a `gcloud ... ssh --command=...` runs on the workers."""
    (command,) = [a for a in argv if a.startswith("--command=")]
    return command[len("--command="):]


def test_create_direct(box):
    assert box.commands("create.sh", "--name=t5", "--zone=us-central2-b") == [
        ["gcloud", "compute", "tpus", "tpu-vm", "create", "t5", "--zone=us-central2-b",
         "--accelerator-type=v4-8", "--version=tpu-ubuntu2204-base"]]
    assert box.commands("create.sh", "--name", "t5", "--zone", "us-central2-b", "--spot",
                        "--accelerator-type=v4-128", "--project=my-proj") == [
        ["gcloud", "compute", "tpus", "tpu-vm", "create", "t5", "--zone=us-central2-b",
         "--project=my-proj", "--accelerator-type=v4-128", "--version=tpu-ubuntu2204-base",
         "--spot"]]


def test_create_queued(box):
    assert box.commands("create.sh", "--name=t5", "--zone=us-central2-b", "--queued", "--spot",
                        "--accelerator-type=v4-128", "--valid-until-duration=6h") == [
        ["gcloud", "compute", "tpus", "queued-resources", "create", "t5-qr",
         "--zone=us-central2-b", "--node-id=t5", "--accelerator-type=v4-128",
         "--runtime-version=tpu-ubuntu2204-base", "--spot", "--valid-until-duration=6h"]]


def test_create_queued_best_effort_uses_alpha_and_waits(box):
    create, describe = box.commands("create.sh", "--name=t5", "--zone=us-central2-b", "--queued",
                                    "--best-effort", "--qr-name=my-qr", "--wait")
    assert create == ["gcloud", "alpha", "compute", "tpus", "queued-resources", "create", "my-qr",
                      "--zone=us-central2-b", "--node-id=t5", "--accelerator-type=v4-8",
                      "--runtime-version=tpu-ubuntu2204-base", "--best-effort"]
    assert describe == ["gcloud", "compute", "tpus", "queued-resources", "describe", "my-qr",
                        "--zone=us-central2-b", "--format=value(state.state)"]


@pytest.mark.parametrize("args, message", [
    (["--spot", "--reserved", "--queued"], "at most one of"),
    (["--reserved"], "--reserved needs --queued"),
    (["--wait"], "--wait needs --queued"),
    (["--queued", "--preemptible"], "--preemptible is not available"),
    (["--accelerator-type=v4"], "--accelerator-type looks like"),
])
def test_create_rejects_inconsistent_flags(box, args, message):
    result = box.run("create.sh", "--name=t5", "--zone=us-central2-b", *args, "--dry-run")
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


def test_setup_copies_this_checkout_and_installs(box):
    tar, scp, unpack, install, check = box.commands("setup.sh", "--name=t5",
                                                    "--zone=us-central2-b", "--extras=tfds",
                                                    "--pip=gcsfs")
    tarball = str(box.dir / "tmp" / "t2t-src-t5.tar.gz")
    assert tar == ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                   "--exclude-standard", "|", "tar", "-C", str(ROOT), "--null", "-T", "-", "-czf",
                   tarball]
    assert scp == SCP + [tarball, "t5:t2t-src.tar.gz", "--zone=us-central2-b", "--worker=all"]
    assert unpack[:-1] == SSH + ["--worker=all"]
    assert remote(unpack) == ("mkdir -p ~/t2t && tar -xzf ~/t2t-src.tar.gz -C ~/t2t && "
                              "rm ~/t2t-src.tar.gz")
    assert install[:-1] == SSH + ["--worker=all"]
    steps = remote(install).split(" && ")
    assert steps[0].startswith("if ! python3.11 -c \"import ensurepip\" 2>/dev/null; then sudo "
                               "apt-get update -qq")
    assert steps[-3:-1] == ["~/t2t-venv/bin/pip install -q --upgrade pip", "cd ~/t2t"]
    assert shlex.split(steps[-1]) == ["~/t2t-venv/bin/pip", "install", "-q", "-e", ".[tfds]",
                                      "jax[tpu]", "gcsfs"]
    assert "python3.11 -m venv ~/t2t-venv" in steps
    assert remote(check).startswith("~/t2t-venv/bin/python -c ")
    assert "jax.device_count()" in remote(check)


def test_setup_extras_exist_in_pyproject():
    """setup.sh's documented --extras=tfds must name a real extra (pip only warns on a typo)."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "tfds" in extras


def test_setup_from_git_with_assets(box):
    clone, install, assets = box.commands(
        "setup.sh", "--name=t5", "--zone=us-central2-b", "--git-url=https://example.com/t2t.git",
        "--git-ref=v0.1.0", "--gcs-asset=gs://t5-data/vocabs/cc_all.32000/sentencepiece.model",
        "--no-check", "--project=p")
    assert clone[:-1] == SSH + ["--project=p", "--worker=all"]
    assert remote(clone) == (
        "if [ ! -d ~/t2t/.git ]; then git clone --quiet https://example.com/t2t.git ~/t2t; fi && "
        "git -C ~/t2t fetch --quiet origin && git -C ~/t2t checkout --quiet v0.1.0")
    assert shlex.split(remote(install).split(" && ")[-1]) == [
        "~/t2t-venv/bin/pip", "install", "-q", "-e", ".", "jax[tpu]"]
    assert remote(assets) == ("mkdir -p ~/t2t-assets && gcloud storage cp "
                              "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model ~/t2t-assets/")


def test_launch_runs_t2t_train_on_all_workers_in_the_background(box):
    (ssh,) = box.commands("launch.sh", "--name=t5", "--zone=us-central2-b", "--run-name=base",
                          "--env=TFDS_DATA_DIR=gs://bucket/tfds", "--", *TRAIN_ARGS)
    assert ssh[:-1] == SSH + ["--worker=all"]
    command = remote(ssh)
    assert command.startswith("cd ~/t2t && mkdir -p ~/t2t-logs && if [ -f ~/t2t-logs/base.pid ] "
                              "&& kill -0 ")
    background = command[command.index("{ nohup ") + 2:command.index(" & echo $!")]
    assert shlex.split(background) == [
        "nohup", "env", "PYTHONUNBUFFERED=1", "TFDS_DATA_DIR=gs://bucket/tfds",
        "~/t2t-venv/bin/t2t", "train", *TRAIN_ARGS, ">>", "~/t2t-logs/base.log", "2>&1", "<",
        "/dev/null"]
    assert "echo $! > ~/t2t-logs/base.pid; }" in command
    # TPU VMs: JAX finds the other hosts itself; no explicit multi-host flags.
    assert "--coordinator_address" not in command and "--process_id" not in command


def test_launch_quotes_awkward_arguments_exactly(box):
    args = ["--gin.MODEL_DIR='gs://b/it''s'", 'x"y', "$HOME", "a b", "`ls`", "!x", ""]
    (ssh,) = box.commands("launch.sh", "--name=t5", "--zone=us-central2-b", "--run-name=r", "--",
                          *args)
    command = remote(ssh)
    background = command[command.index("{ nohup ") + 2:command.index(" & echo $!")]
    assert shlex.split(background)[5:-5] == args


def test_quote_round_trips_through_bash(box):
    words = ["plain", "a b", "it's", "{'data': 2}", "--command=cd ~ && ls", "$x", '"', "", "\\"]
    script = (f"source {shlex.quote(str(SCRIPTS / 'lib.sh'))}; "
              'q=$(quote "$@"); eval "set -- $q"; printf "%s\\0" "$@"')
    out = subprocess.run(["bash", "-c", script, "bash", *words], capture_output=True, text=True,
                         env=box.env, check=True).stdout
    assert out.split("\0")[:-1] == words


def test_logs(box):
    (ssh,) = box.commands("logs.sh", "--name=t5", "--zone=us-central2-b", "--run-name=base")
    assert ssh == SSH + ["--worker=0", "--command=tail -n 100 -F ~/t2t-logs/base.log"]
    (ssh,) = box.commands("logs.sh", "--name=t5", "--zone=us-central2-b", "--run-name=base",
                          "--worker=all", "--lines=20", "--no-follow")
    assert ssh == SSH + ["--worker=all", "--command=tail -n 20 ~/t2t-logs/base.log"]


def test_stop(box):
    (ssh,) = box.commands("stop.sh", "--name=t5", "--zone=us-central2-b", "--run-name=base")
    assert ssh[:-1] == SSH + ["--worker=all"]
    assert remote(ssh).startswith("if [ -f ~/t2t-logs/base.pid ]; then p=$(cat "
                                  "~/t2t-logs/base.pid); kill -TERM \"$p\"")


def test_fetch_from_cloud_storage_needs_no_tpu(box):
    assert box.commands("fetch.sh", "--model-dir=gs://bucket/t5_1_1_base/", "--dest=out") == [
        ["mkdir", "-p", "out"],
        ["gcloud", "storage", "cp", "--recursive", "gs://bucket/t5_1_1_base", "out"]]
    assert box.commands("fetch.sh", "--model-dir=gs://bucket/t5", "--dest=out",
                        "--skip-checkpoints") == [
        ["mkdir", "-p", "out"],
        ["gcloud", "storage", "rsync", "--recursive", "--exclude=^checkpoints/", "gs://bucket/t5",
         "out/t5"]]
    assert not (box.dir / "out").exists()


def test_fetch_from_worker_0(box):
    assert box.commands("fetch.sh", "--name=t5", "--zone=us-central2-b", "--model-dir=~/runs/x",
                        "--dest=out", "--run-name=base") == [
        ["mkdir", "-p", "out"],
        SCP + ["--recurse", "t5:runs/x", "out", "--zone=us-central2-b", "--worker=0"],
        SCP + ["t5:t2t-logs/base.log", "out", "--zone=us-central2-b", "--worker=0"]]


def test_delete(box):
    assert box.commands("delete.sh", "--name=t5", "--zone=us-central2-b") == [
        ["gcloud", "compute", "tpus", "tpu-vm", "delete", "t5", "--zone=us-central2-b", "--quiet"]]
    assert box.commands("delete.sh", "--name=t5", "--zone=us-central2-b", "--queued",
                        "--async") == [
        ["gcloud", "compute", "tpus", "queued-resources", "delete", "t5-qr",
         "--zone=us-central2-b", "--force", "--async", "--quiet"]]


def test_environment_defaults(box):
    env = {"T2T_TPU_NAME": "t5", "T2T_TPU_ZONE": "us-central2-b", "T2T_TPU_PROJECT": "p"}
    assert box.commands("delete.sh", env=env) == [
        ["gcloud", "compute", "tpus", "tpu-vm", "delete", "t5", "--zone=us-central2-b",
         "--project=p", "--quiet"]]


def test_submit_prints_sbatch_and_the_srun_line(box):
    (sbatch, srun) = box.commands("slurm/submit.sh", "--nodes=4", "--partition=gpu",
                                  "--venv=/opt/venv", "--time=2:00:00", "--", *TRAIN_ARGS)
    assert sbatch == ["sbatch", "--job-name=t2t", "--nodes=4", "--ntasks-per-node=1",
                      "--gpus-per-node=8", "--time=2:00:00", "--partition=gpu",
                      f"--chdir={ROOT}", "--export=ALL,T2T_COORDINATOR_PORT=12345,T2T_VENV=/opt/venv",
                      str(SBATCH_SCRIPT), *TRAIN_ARGS]
    assert srun[:6] == ["srun", "--ntasks=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                        "bash", "-c"]
    assert shlex.split(srun[6]) == [
        "exec", "/opt/venv/bin/t2t", "train", "--coordinator_address=FIRST_NODE:12345",
        "--num_processes=4", "--process_id=$SLURM_PROCID", "$@"]
    assert srun[7:] == ["t2t", *TRAIN_ARGS]


def test_sbatch_script_takes_the_coordinator_from_slurm(box):
    scontrol = box.bin / "scontrol"  # the one command allowed to run: it only lists hosts
    scontrol.write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu[017-018]" ] || exit 1\n'
                        'printf "gpu017\\ngpu018\\n"\n')
    scontrol.chmod(0o755)
    result = subprocess.run(
        ["bash", str(SBATCH_SCRIPT), "--gin.TRAIN_STEPS=10"], cwd=box.dir, capture_output=True,
        text=True, timeout=60,
        env={**box.env, "T2T_DRY_RUN": "1", "SLURM_NTASKS": "2", "SLURM_PROCID": "0",
             "SLURM_JOB_NODELIST": "gpu[017-018]", "T2T_COORDINATOR_PORT": "23456"})
    assert result.returncode == 0, result.stderr
    assert not box.calls.exists()
    srun = shlex.split(result.stdout)
    assert srun[:6] == ["srun", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                        "bash", "-c"]
    assert shlex.split(srun[6]) == [
        "exec", "t2t", "train", "--coordinator_address=gpu017:23456", "--num_processes=2",
        "--process_id=$SLURM_PROCID", "$@"]
    assert srun[7:] == ["t2t", "--gin.TRAIN_STEPS=10"]


def test_sbatch_task_command_expands_per_task(box):
    """What each task's shell does with the srun line's `bash -c` script."""
    (_, srun) = box.commands("slurm/submit.sh", "--nodes=2", "--", "--gin.X='a b'")
    fake_t2t = box.bin / "t2t-echo"
    fake_t2t.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake_t2t.chmod(0o755)
    task = srun[6].replace("exec t2t ", f"exec {fake_t2t} ")
    out = subprocess.run(["bash", "-c", task, *srun[7:]], capture_output=True, text=True,
                         env={**box.env, "SLURM_PROCID": "1"}, check=True).stdout.splitlines()
    assert out == ["train", "--coordinator_address=FIRST_NODE:12345", "--num_processes=2",
                   "--process_id=1", "--gin.X='a b'"]


REQUIRED = [
    ("create.sh", ["--zone=z"], "--name is required"),
    ("create.sh", ["--name=t5"], "--zone is required"),
    ("setup.sh", ["--zone=z"], "--name is required"),
    ("launch.sh", ["--name=t5", "--zone=z"], "--run-name is required"),
    ("launch.sh", ["--zone=z", "--run-name=r"], "--name is required"),
    ("logs.sh", ["--name=t5", "--zone=z"], "--run-name is required"),
    ("stop.sh", ["--name=t5", "--zone=z"], "--run-name is required"),
    ("fetch.sh", ["--dest=out"], "--model-dir is required"),
    ("fetch.sh", ["--model-dir=gs://b/x"], "--dest is required"),
    ("fetch.sh", ["--model-dir=runs/x", "--dest=out"], "--name is required"),
    ("delete.sh", ["--name=t5"], "--zone is required"),
    ("slurm/submit.sh", ["--", "--gin.X=1"], "--nodes is required"),
]


@pytest.mark.parametrize("script, args, message", REQUIRED)
def test_missing_required_arguments_fail_with_usage(box, script, args, message):
    result = box.run(script, "--dry-run", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Usage: " in result.stderr
    assert result.stdout == ""


SCRIPTS_ALL = ["create.sh", "setup.sh", "launch.sh", "logs.sh", "stop.sh", "fetch.sh",
               "delete.sh", "slurm/submit.sh"]


@pytest.mark.parametrize("script", SCRIPTS_ALL)
def test_unknown_option_and_missing_value_fail(box, script):
    result = box.run(script, "--dry-run", "--bogus")
    assert result.returncode == 2 and "unknown argument '--bogus'" in result.stderr
    result = box.run(script, "--dry-run", "--nodes" if script.startswith("slurm") else "--name")
    assert result.returncode == 2 and "needs a value" in result.stderr


@pytest.mark.parametrize("script", SCRIPTS_ALL)
def test_help(box, script):
    result = box.run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith("Usage: ")
    assert "--dry-run" in result.stdout


@pytest.mark.parametrize("script, args", [
    ("launch.sh", ["--name=t5", "--zone=z", "--run-name=r"]), ("slurm/submit.sh", ["--nodes=2"])])
def test_dry_run_after_the_separator_is_refused_not_run(box, script, args):
    """`... -- ARGS --dry-run` would hand --dry-run to t2t and really run: refuse it."""
    result = box.run(script, *args, "--", "--gin.X=1", "--dry-run")
    assert result.returncode == 2 and "--dry-run must come before --" in result.stderr


def test_bad_names_are_refused(box):
    result = box.run("launch.sh", "--name=t5", "--zone=z", "--run-name=a;rm", "--dry-run")
    assert result.returncode == 2 and "--run-name must be" in result.stderr
    result = box.run("launch.sh", "--name=t5", "--zone=z", "--run-name=r", "--remote-dir=a b",
                     "--dry-run")
    assert result.returncode == 2 and "remote path" in result.stderr
