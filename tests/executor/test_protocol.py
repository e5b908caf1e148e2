import os

import pytest

from executor import protocol


def test_frames_round_trip_through_a_pipe():
    r, w = os.pipe()
    msg = {"t": "job", "code": "print('é')\n" * 100, "n": 3}
    protocol.write_msg(w, msg)
    assert protocol.read_msg(r) == msg
    os.close(w)
    with pytest.raises(EOFError):
        protocol.read_msg(r)
    os.close(r)
