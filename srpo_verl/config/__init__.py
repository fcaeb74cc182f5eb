"""Hydra configs of srpo_verl (composed on top of verl's `pkg://verl.trainer.config`)."""
