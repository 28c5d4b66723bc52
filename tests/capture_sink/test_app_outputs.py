"""Outputs join and leave the running sink through SinkApp.add_output/remove_output, from any thread,
while the frame loop iterates over them: the loop always sees a whole tuple, never a list changing under it."""

from __future__ import annotations

import threading

from capture_sink.app import SinkApp
from capture_sink.config import SinkConfig, validate


class Counting:
    def __init__(self) -> None:
        self.frames = 0

    def submit(self, frame: object) -> None:
        self.frames += 1


def test_outputs_come_and_go_while_the_loop_hands_out_frames() -> None:
    app = SinkApp(validate(SinkConfig(source="demo", outputs=["null"], http=False)))
    steady = Counting()
    app.add_output(steady)
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            extra = Counting()
            app.add_output(extra)
            app.remove_output(extra)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(20000):
            for writer in app.writers:   # what SinkApp.run does for each frame
                writer.submit(None)
    finally:
        stop.set()
        thread.join()
    assert steady.frames == 20000
    assert app.writers == (steady,)
    app.remove_output(steady)
    assert app.writers == ()
