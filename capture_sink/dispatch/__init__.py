"""The sink's load-balancing broker: frames out to segmenter replicas, masks back, newest first.

ZeroMQ guide pattern: load-balancing broker (lbbroker) with Paranoid Pirate heartbeats (ppqueue).
One ROUTER socket, owned by one I/O thread, talks to every replica: those that connect to the
sink's `bind` endpoints and those that bind and that the sink connects to. A replica says hello
(model, input size, capacity) and then gets frames only while it has free credit, so a slow or
dead replica is never sent more. Only the newest submitted frame waits for a free replica; a newer
one replaces it (counted as dropped). Masks can arrive out of order; one older than the newest
applied mask is dropped. Heartbeats go both ways; a replica silent for `liveness` intervals is
dropped and its in-flight frames given up. A replica that heartbeats to a sink that does not know
it (the sink restarted) is told to say hello again, so replicas rejoin by themselves.

    with Dispatcher(bind=["tcp://127.0.0.1:5555"]) as dispatcher:
        dispatcher.start()
        ...
        if dispatcher.input_spec:
            dispatcher.submit(prepare_input(frame, dispatcher.input_spec), seq, capture_time)
        result = dispatcher.wait_for(seq, timeout_s=0.033)

Files: `dispatcher.py` the caller's face, `broker.py` the I/O thread, `mailbox.py` what crosses
between them, `replicas.py` the replica pool and which replica gets the next frame.
"""

from .dispatcher import ENCODINGS, REQUEST_TIMEOUT_S, Dispatcher
from .mailbox import MaskResult
from .replicas import InFlight, Replica, ReplicaPool

__all__ = ["ENCODINGS", "REQUEST_TIMEOUT_S", "Dispatcher", "InFlight", "MaskResult", "Replica", "ReplicaPool"]
