"""InstructGPT's pipeline (Ouyang et al. 2022) on t2t's decoder-only models.

    preference_task.py  a synthetic task with a checkable rule: demonstrations, ranked comparisons
    (1) SFT             `t2t train --gin_file=rlhf/sft.gin` (the ordinary trainer and objective)
    scalar_model.py     a decoder-only transformer with a scalar head (reward model, value function)
    reward_model.py     (2) pairwise ranking loss on comparisons, held-out pairwise accuracy
    ppo.py              (3) PPO with a per-token KL penalty to the SFT model, value function and GAE
    sequences.py        query ⧺ response rows; losses.py, advantages.py, kl_controller.py: the maths
    cli.py              `t2t rlhf data | reward-model | ppo`
"""
