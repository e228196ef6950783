"""The training library: the loop, schedules, data loaders, DDP, checkpoints. The `ftedge
tune` command that drives it is the stage ftedge/stages/tune/."""
