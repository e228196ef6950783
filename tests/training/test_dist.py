"""training/dist.py in one process: rank 0 of 1, every collective is the identity. The two-
process job is tests/test_cli.py::test_torchrun_two_cpu_processes (slow)."""

from ftedge.training.dist import (DistContext, all_reduce_sum, broadcast_flag, broadcast_object,
                                  init_distributed, shutdown)


def test_a_single_process_is_rank_0_of_1_and_collectives_pass_through(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx, device = init_distributed("cpu")
    assert ctx == DistContext() and device == "cpu" and ctx.is_main and not ctx.enabled
    assert broadcast_flag(True, ctx, "cpu") is True
    assert all_reduce_sum([1.5, 2.0], ctx, "cpu") == [1.5, 2.0]
    assert broadcast_object({"run": "r"}, ctx) == {"run": "r"}
    shutdown(ctx)  # nothing to tear down
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed("cpu") == (DistContext(), "cpu")


def test_only_rank_0_is_main():
    assert DistContext(rank=1, world_size=2).enabled and not DistContext(1, 2).is_main
