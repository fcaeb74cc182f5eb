"""Start-up and input checks that read the run's inputs (data rows) or claim its resources (the checkpoint
directory's lock). No ray or verl import here: the driver runs these before Ray starts."""
