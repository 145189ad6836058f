"""A sweep as a W&B sweep: wandb.sweep registers it, wandb.agent runs it here.

The W&B sweep is a grid over one parameter, `trial`, whose values are the
trial names of skinjax.sweeps.spec, so W&B runs exactly the trials an
offline sweep runs, under the same names and in the same folders (random
search included: the draw is skinjax's, not W&B's). Each trial's run still
logs its whole config, flat, so the W&B table and charts sort, filter and
group by the swept keys themselves. For every trial the agent starts a W&B
run; its id is given to the trial's run folder (WORKDIR/wandb_run_id,
unless the folder has one already from an earlier attempt), and the trial
then trains exactly as offline (skinjax.sweeps.local), continuing that W&B
run. Not exercised by the tests: they have no network.
"""

import os

import wandb

from skinjax.comparison import runs
from skinjax.run_folder import atomic
from skinjax.run_folder import tracking
from skinjax.sweeps import local


def run(sweep, trial_plans: list, wandb_config) -> dict:
  """Registers the sweep with W&B and runs its trials through an agent;
  returns local.run's outcome per trial."""
  where = dict(entity=wandb_config.entity or None,
               project=wandb_config.project)
  sweep_id = wandb.sweep(
      {'name': sweep.name, 'method': 'grid',
       'metric': {'name': sweep.metric, 'goal': 'minimize' if
                  runs.lower_is_better(sweep.metric) else 'maximize'},
       'parameters': {'trial': {'values': [p.trial.name
                                           for p in trial_plans]}}}, **where)
  by_name = {plan.trial.name: plan for plan in trial_plans}
  outcome = {}

  def one_trial():
    agent_run = wandb.init()
    plan = by_name[agent_run.config['trial']]
    os.makedirs(plan.workdir, exist_ok=True)
    id_path = os.path.join(plan.workdir, tracking.RUN_ID_FILE)
    if not os.path.exists(id_path):
      atomic.write_text(id_path, agent_run.id)
    agent_run.finish()
    outcome.update(local.run(sweep, [plan]))

  wandb.agent(sweep_id, function=one_trial, count=len(trial_plans), **where)
  return outcome
