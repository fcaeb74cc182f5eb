#!/usr/bin/env bash
# SDPO baseline (self-distillation on every sample with a correct sibling) on Qwen3-4B: the paper's Table 1 row +SDPO.
#   one on-policy update per step; top-100 + tail JSD to the EMA teacher on every sample that has a correct sibling.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (the paper: 8x NVIDIA H20 96 GB, SGLang rollout;
# NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task per run: TASK=chemistry|physics|biology|
# material|tooluse. Paper windows are 1h/5h/10h of training time (init and validation excluded).
#
# Paper targets, best avg@16 (%) within 1h/5h/10h (Qwen3-4B, SRPO Table 1):
#   Chem | Phys | Bio | Mat | Tool | Avg
#   base: 43.6 | 59.8 | 30.8 | 61.2 | 58.8 | 50.8
#   sdpo:  70.0/77.3/77.3 | 65.4/66.7/66.7 | 54.0/54.0/54.0 | 74.3/74.3/74.3 | 61.1/61.1/61.1 | 65.0/66.7/66.7
#
# Hyperparameters: lr 1e-5, mini-batch 32 questions, loss_agg_mode seq-mean-token-mean; shared settings (batch 32 x 8
# rollouts, lengths 2048/8192, val n=16 T=0.6 top-p 0.95 every 5 steps, clip-high 0.28, rollout IS clip 2, no KL,
# warmup 10, thinking off) are in recipes/common/paper_recipe.sh.
#
#   TASK=chemistry bash recipes/qwen3_4b/run_sdpo.sh                      # one Table 1 cell
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_4b/run_sdpo.sh              # print the resolved config only
#   bash recipes/qwen3_4b/run_sdpo.sh trainer.total_training_steps=450   # trailing args: Hydra overrides
set -xeuo pipefail

METHOD=sdpo
MODEL_TAG=qwen3_4b
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-4B}
LR=${LR:-1e-5}
MINI_BATCH=${MINI_BATCH:-32}
LOSS_AGG_MODE=${LOSS_AGG_MODE:-seq-mean-token-mean}

# shellcheck source-path=SCRIPTDIR source=../common/paper_recipe.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/paper_recipe.sh"
srpo_paper_run "$@"
