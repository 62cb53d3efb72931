"""Thread helpers of the streaming core (vxlib.stream.workers)."""

from __future__ import annotations


def test_intra_op_threads_sets_and_restores():
    import threading

    import torch

    from vxlib.stream.workers import intra_op_threads

    before = torch.get_num_threads()
    seen = {}

    def work():
        with intra_op_threads(before + 1):
            seen["inside"] = torch.get_num_threads()
        seen["after"] = torch.get_num_threads()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == {"inside": before + 1, "after": before}
    later = {}
    t = threading.Thread(target=lambda: later.setdefault("n", torch.get_num_threads()))
    t.start()
    t.join()
    assert later["n"] == before  # threads started afterwards get the old default back
    assert torch.get_num_threads() == before
