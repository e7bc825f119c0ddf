"""The Python SDK's side of streamed input and flow control (docs/protocol.md "Streamed input and
flow control"), against a real worker process: input chunks reach the handler in order and are
acknowledged as it takes them; outputs beyond the window wait for credit; abort stops the input."""

import unittest

from harness import Orchestrator


class StreamingTest(unittest.TestCase):
    def setUp(self) -> None:
        self.orch = Orchestrator()
        self.addCleanup(self.orch.close)

    def test_streamed_input_is_acked_as_taken_and_output_waits_for_credit(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        o.send({"type": "request", "request_id": "s1", "input": "a", "params": {}, "streamed": True,
                "input_window": 4, "output_window": 1})
        msgs = o.recv_until(lambda m: m.get("type") == "input_ack" and m["request_id"] == "s1")
        self.assertEqual(msgs[-1]["seq"], 0)
        o.recv_until(lambda m: m.get("type") == "output" and m["data"] == {"got": "a"})

        # The window (1) is used: the handler waits in drained() and takes no more input.
        o.recv_until(lambda m: m.get("type") == "log" and m["message"] == "waiting for credit after a")
        o.send({"type": "input", "request_id": "s1", "seq": 1, "data": "b"})
        # A later request is answered: the worker read the input, but its handler did not take it.
        self.assertEqual(o.request("other", "x")[-1]["data"]["echo"], "x")
        self.assertEqual([m["seq"] for m in o.messages if m.get("type") == "input_ack"], [0])

        o.send({"type": "credit", "request_id": "s1", "n": 1})
        o.recv_until(lambda m: m.get("type") == "output" and m["data"] == {"got": "b"})
        self.assertEqual([m["seq"] for m in o.messages if m.get("type") == "input_ack"], [0, 1])
        o.send({"type": "input_end", "request_id": "s1"})
        o.send({"type": "credit", "request_id": "s1", "n": 1})
        last = o.recv_until(lambda m: m.get("type") == "output" and m["done"] and m["request_id"] == "s1")[-1]
        self.assertEqual(last["data"], {"chunks": ["a", "b"]})
        outputs = [m["seq"] for m in o.messages if m.get("type") == "output" and m["request_id"] == "s1"]
        self.assertEqual(outputs, [0, 1, 2])

    def test_an_abort_stops_a_handler_waiting_for_input(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        o.send({"type": "request", "request_id": "s2", "input": "a", "params": {}, "streamed": True, "input_window": 4})
        o.recv_until(lambda m: m.get("type") == "output" and m["data"] == {"got": "a"})
        o.send({"type": "abort", "request_id": "s2"})
        # The handler's iterator raised: the worker serves on, and nothing more of s2 comes.
        self.assertEqual(o.request("after", "x")[-1]["data"]["echo"], "x")
        self.assertFalse(any(m.get("request_id") == "s2" and m.get("done") for m in o.messages))

    def test_bad_stream_messages_are_protocol_errors(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        o.send({"type": "credit", "request_id": "s3", "n": 0})
        code, _out, err = o.wait_exit()
        self.assertEqual(code, 0, err)
        self.assertIn("n must be a positive integer", err)


if __name__ == "__main__":
    unittest.main()
