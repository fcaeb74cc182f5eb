#!/usr/bin/env bash
# SDPO restricted to correct samples (Fig. 1b) on Qwen3-8B: the paper's Fig. 1(b), no table.
#   SDPO settings; only correct samples with another correct sibling are distilled.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (the paper: 8x NVIDIA H20 96 GB, SGLang rollout;
# NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task per run: TASK=chemistry|physics|biology|
# material|tooluse. Paper windows are 1h/5h/10h of training time (init and validation excluded).
#
# Paper target (Qwen3-8B, SRPO Table 2 / Fig. 1b): none reported: degrades and collapses earlier than SDPO on Chemistry (qualitative)
#
# Hyperparameters: lr 1e-5, mini-batch 32 questions, loss_agg_mode seq-mean-token-mean; shared settings (batch 32 x 8
# rollouts, lengths 2048/8192, val n=16 T=0.6 top-p 0.95 every 5 steps, clip-high 0.28, rollout IS clip 2, no KL,
# warmup 10, thinking off) are in recipes/common/paper_recipe.sh.
#
#   TASK=chemistry bash recipes/qwen3_8b/run_sdpo_correct_only.sh                      # one Table 1 cell
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_8b/run_sdpo_correct_only.sh              # print the resolved config only
#   bash recipes/qwen3_8b/run_sdpo_correct_only.sh trainer.total_training_steps=450   # trailing args: Hydra overrides
set -xeuo pipefail

METHOD=sdpo_correct_only
MODEL_TAG=qwen3_8b
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-8B}
LR=${LR:-1e-5}
MINI_BATCH=${MINI_BATCH:-32}
LOSS_AGG_MODE=${LOSS_AGG_MODE:-seq-mean-token-mean}

# shellcheck source-path=SCRIPTDIR source=../common/paper_recipe.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/paper_recipe.sh"
srpo_paper_run "$@"
