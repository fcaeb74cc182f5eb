#!/usr/bin/env bash
# SRPO (sample routing: failed samples with a correct sibling -> DW-SDPO, all others -> GRPO) on Qwen3-4B: the paper's Table 1 row +SRPO.
#   one on-policy update per step; one token-mean over GRPO and entropy-weighted SDPO tokens.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (the paper: 8x NVIDIA H20 96 GB, SGLang rollout;
# NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task per run: TASK=chemistry|physics|biology|
# material|tooluse. Paper windows are 1h/5h/10h of training time (init and validation excluded).
#
# Paper targets, best avg@16 (%) within 1h/5h/10h (Qwen3-4B, SRPO Table 1):
#   Chem | Phys | Bio | Mat | Tool | Avg
#   base: 43.6 | 59.8 | 30.8 | 61.2 | 58.8 | 50.8
#   srpo:  68.8/81.0/82.7 | 69.2/74.0/74.0 | 53.8/58.6/65.8 | 75.7/79.1/81.3 | 61.4/63.1/67.0 | 65.8/71.2/74.2
#
# Hyperparameters: lr 5e-6, mini-batch 32 questions, loss_agg_mode token-mean; shared settings (batch 32 x 8
# rollouts, lengths 2048/8192, val n=16 T=0.6 top-p 0.95 every 5 steps, clip-high 0.28, rollout IS clip 2, no KL,
# warmup 10, thinking off) are in recipes/common/paper_recipe.sh.
#
#   TASK=chemistry bash recipes/qwen3_4b/run_srpo.sh                      # one Table 1 cell
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_4b/run_srpo.sh              # print the resolved config only
#   bash recipes/qwen3_4b/run_srpo.sh trainer.total_training_steps=450   # trailing args: Hydra overrides
set -xeuo pipefail

METHOD=srpo
MODEL_TAG=qwen3_4b
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-4B}
LR=${LR:-5e-6}
MINI_BATCH=${MINI_BATCH:-32}
LOSS_AGG_MODE=${LOSS_AGG_MODE:-token-mean}

# shellcheck source-path=SCRIPTDIR source=../common/paper_recipe.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/paper_recipe.sh"
srpo_paper_run "$@"
