"""The prefix of every console line srpo_verl prints during a run (warnings, sample views, resume notes)."""

PREFIX = "[srpo]"
