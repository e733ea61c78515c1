"""finetune_then_eval: the after-commands fine-tune from the run that just trained, with valid gin,
and send the scores back to that run."""

import gin

from t2t.configuration import parse_gin, split_gin_flags
from t2t.sweeps.commands import after_commands
from t2t.sweeps.downstream import finetune_then_eval
from t2t.sweeps.spec import Trial


def _bound(key: str):
    """The value bound to `key`, following macro references (`train.seed = %SEED`)."""
    value = gin.query_parameter(key)
    while isinstance(value, gin.config.ConfigurableReference) and value.selector == "gin.macro":
        value = gin.query_parameter(f"{'/'.join(value.scopes)}/gin.macro.value")
    return value


def _commands(tmp_path, **options):
    trial = Trial(name="encoder_decoder-denoising",
                  after=finetune_then_eval("experiments/t5_table2/{trial}.gin", "wiki_topic",
                                           train_steps=150, **options))
    model_dir = str(tmp_path / "encoder_decoder-denoising" / "seed_2")
    return model_dir, after_commands(trial, 2, model_dir, str(tmp_path))


def test_finetune_command_is_a_valid_finetuning_configuration_of_the_trial(tmp_path):
    model_dir, (train, _) = _commands(tmp_path, feature_lengths={"inputs": 128, "targets": 16},
                                      batch_size=8, bindings={"train.eval_batches": 2})
    assert train[1:4] == ["-m", "t2t.cli", "train"]
    files, bindings, rest = split_gin_flags(train[4:])
    assert rest == []
    parse_gin(files, bindings)  # raises on an unknown or unset binding
    try:
        assert _bound("train.initial_checkpoint_path") == model_dir
        assert _bound("train.model_dir") == model_dir + "/finetune_wiki_topic"
        assert _bound("train.seed") == 2
        assert _bound("train.train_steps") == 150
        assert _bound("train.batch_size") == 8
        assert gin.query_parameter("train.eval_batches") == 2
        assert _bound("train.task_feature_lengths") == {"inputs": 128, "targets": 16}
        assert _bound("train.data_source") == "task:wiki_topic"
        assert _bound("train.objective").selector == "supervised"
        assert _bound("train.learning_rate") == 0.001
    finally:
        gin.clear_config()


def test_eval_command_scores_the_finetuned_model_into_the_pretraining_run(tmp_path):
    model_dir, (_, evaluate) = _commands(tmp_path, max_examples=300)
    assert evaluate[1:] == ["-m", "t2t.cli", "eval", f"--run_dir={model_dir}/finetune_wiki_topic",
                            "--task=wiki_topic", f"--metrics_dir={model_dir}",
                            "--rank_classification", "--max_examples=300"]
    _, (_, generate) = _commands(tmp_path, rank_classification=False)
    assert "--rank_classification" not in generate
