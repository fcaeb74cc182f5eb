#!/usr/bin/env bash
# GRPO baseline (strengthened: DAPO clip-high, Dr.GRPO centring, rollout IS) on Qwen3-8B, on math: MATH train, MATH-500 (or AIME 2024) test,
#   rewards from math-verify (data_source math_verify/<set>, srpo_verl/rewards/math_answer.py). Not a paper experiment.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it).
# Data: python scripts/data/prepare_math.py --from-hf --out data/  (writes data/math/{train,test}.parquet).
#
# Paper targets: none. The SRPO paper has no math experiment; the hyperparameters are the paper's grpo ones for its
# science tasks (SRPO Table 3: lr 1e-6, mini-batch 8 questions, loss_agg_mode seq-mean-token-mean), not tuned for math.
#
# What was tested: this script composes through Hydra to those values with the math data and passes srpo_verl's
# start-up validation (tests/unit/test_recipes.py, on CPU); the math-verify reward is tested on its own
# (tests/unit/test_math_verifier.py) and the preparer on local files (tests/unit/test_data_prep_math.py).
# What was not: a training run on GPUs (no accuracy or speed figures), and the hub download (no network in CI).
#
#   bash recipes/qwen3_8b/run_grpo_math.sh                                   # MATH -> MATH-500
#   DRY_RUN=1 bash recipes/qwen3_8b/run_grpo_math.sh                         # print the resolved config only
#   bash recipes/qwen3_8b/run_grpo_math.sh trainer.total_training_steps=450  # trailing args: Hydra overrides
set -xeuo pipefail

METHOD=grpo
MODEL_TAG=qwen3_8b
TASK=${TASK:-math}
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-8B}
LR=${LR:-1e-6}
MINI_BATCH=${MINI_BATCH:-8}
LOSS_AGG_MODE=${LOSS_AGG_MODE:-seq-mean-token-mean}

# shellcheck source-path=SCRIPTDIR source=../common/paper_recipe.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/paper_recipe.sh"
srpo_paper_run "$@"
