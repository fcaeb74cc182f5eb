"""srpo_verl's verl 0.9.1 touch-points: trainer, worker, loss callable, registration (a verl upgrade changes these).

Importing this package imports nothing from verl; import the submodules you need.
"""
