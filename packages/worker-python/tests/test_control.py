"""Conformance of the Python worker SDK with docs/protocol.md: the behaviours the Node SDK's tests
check (packages/core/test/runtime/control.test.ts), against real worker processes."""

import json
import os
import signal
import subprocess
import sys
import unittest

from harness import FIXTURES, SRC, Orchestrator, is_alive, wait_until


class ControlProtocolTest(unittest.TestCase):
    def setUp(self) -> None:
        self.orch = Orchestrator()
        self.addCleanup(self.orch.close)

    def test_hello_welcome_ready_stream_abort_shutdown(self) -> None:
        o = self.orch
        o.start()
        ready = o.attach(engine_args={"model": "m"})
        self.assertEqual(ready["info"], {"pid": o.proc.pid, "stage": 0})

        # Streamed: seq 0, 1 ...; done only on the last.
        msgs = o.request("q1", "hi")
        self.assertEqual(
            [(m["seq"], m["done"], m["data"]) for m in msgs],
            [(0, False, {"echo": "hi", "part": 0}), (1, True, {"echo": "hi", "part": 1, "engine_args": {"model": "m"}})],
        )

        # Abort mid-stream: the generator is stopped and nothing more is sent for the request.
        o.send({"type": "request", "request_id": "q2", "input": "stream", "params": {}})
        first = o.recv_until(lambda m: m.get("request_id") == "q2" and m["data"] == {"token": 3})
        self.assertEqual([m["seq"] for m in first], [0, 1, 2, 3])
        o.send({"type": "abort", "request_id": "q2"})
        # A request sent after the abort is answered, and nothing of q2 comes after its abort was seen.
        after = o.request("q3", "after")
        late = [m for m in after if m.get("request_id") == "q2"]
        self.assertTrue(all(not m["done"] for m in late), late)
        self.assertLessEqual(len(late), 2)  # at most what was already in the socket when abort arrived
        self.assertEqual(after[-1]["data"]["echo"], "after")

        # A handler blocked on its abort signal wakes up.
        o.send({"type": "request", "request_id": "q4", "input": "slow", "params": {}})
        o.send({"type": "abort", "request_id": "q4"})
        logs = lambda: [m["message"] for m in o.messages if m["type"] == "log"]  # noqa: E731
        o.recv_until(lambda _: "aborted q4: aborted by the orchestrator" in logs() and any(t.startswith("stopped q2 after ") for t in logs()))
        o.send({"type": "shutdown", "reason": "test over"})
        code, out, err = o.wait_exit()
        self.assertEqual(code, 0, err)
        self.assertIn("shutdown: test over", out)
        self.assertTrue(o.at_eof())
        self.assertFalse(any(m.get("request_id") in ("q2", "q4") and m.get("done") for m in o.messages))

    def test_a_handler_that_raises_fails_its_request_and_the_worker_serves_on(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        self.assertEqual(o.request("bad", "fail"), [{"type": "request_error", "request_id": "bad", "message": "asked to fail"}])
        self.assertEqual(o.request("good", "x")[-1]["data"]["echo"], "x")

    def test_a_request_id_already_in_flight_is_refused(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        o.send({"type": "request", "request_id": "dup", "input": "slow", "params": {}})
        o.send({"type": "request", "request_id": "dup", "input": "x", "params": {}})
        err = o.recv_until(lambda m: m["type"] == "request_error")[-1]
        self.assertEqual(err, {"type": "request_error", "request_id": "dup", "message": "request dup is already in flight"})

    def test_exits_0_when_the_orchestrator_closes_the_connection(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        o.hang_up()
        code, out, err = o.wait_exit()
        self.assertEqual(code, 0, err)
        self.assertIn("shutdown: the control connection closed", out)

    def test_exits_0_when_its_piped_stdin_reaches_eof(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        o.proc.stdin.close()
        code, out, err = o.wait_exit()
        self.assertEqual(code, 0, err)
        self.assertIn("shutdown: stdin closed", out)
        self.assertTrue(o.at_eof())

    def test_dies_with_a_sigkilled_orchestrator(self) -> None:
        sock_dir = os.path.join(self.orch.dir, "killed")
        os.mkdir(sock_dir)
        orchestrator = subprocess.Popen(
            [sys.executable, os.path.join(FIXTURES, "orchestrator.py"), SRC, sock_dir, os.path.join(FIXTURES, "echo_engine.py:Echo")],
            stdout=subprocess.PIPE,
        )
        self.addCleanup(lambda: orchestrator.poll() is None and orchestrator.kill())
        line = json.loads(orchestrator.stdout.readline())
        worker = line["worker_pid"]
        self.assertEqual((line["hello_pid"], line["ready"]), (worker, "ready"))
        self.assertTrue(is_alive(worker))
        orchestrator.send_signal(signal.SIGKILL)
        orchestrator.wait()
        orchestrator.stdout.close()
        self.assertTrue(wait_until(lambda: not is_alive(worker)), f"worker {worker} outlived its orchestrator")

    def test_requests_before_the_handler_are_queued_and_heartbeats_and_logs_flow(self) -> None:
        o = self.orch
        o.start(argv=[sys.executable, os.path.join(FIXTURES, "direct_worker.py"), SRC, "0.5"])
        o.accept()
        # The request rides in the same write as the welcome: the SDK must keep it for the handler.
        o.send((json.dumps({"type": "welcome", "v": 1, "run_id": "r1", "stage_id": 0, "replica_id": 0, "engine_args": {}, "metadata": {}})
                + "\n" + json.dumps({"type": "request", "request_id": "early", "input": 7, "params": {}}) + "\n").encode())
        msgs = o.recv_until(lambda m: m["type"] == "output")
        self.assertIn({"type": "log", "level": "info", "message": "direct worker attached"}, msgs)
        self.assertIn({"type": "ready", "info": {"direct": True}}, msgs)
        self.assertEqual(msgs[-1], {"type": "output", "request_id": "early", "seq": 0, "data": {"late": 7}, "done": True})
        # heartbeats every 50 ms while the handler was missing
        self.assertGreaterEqual(sum(m["type"] == "heartbeat" for m in msgs), 3)
        o.send({"type": "shutdown"})
        self.assertEqual(o.wait_exit()[0], 0)


class HandshakeFailureTest(unittest.TestCase):
    def setUp(self) -> None:
        self.orch = Orchestrator()
        self.addCleanup(self.orch.close)

    def refused(self, answer: bytes, o: "Orchestrator | None" = None) -> str:
        o = o or self.orch
        o.start()
        o.accept()
        o.send(answer)
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1, err)
        self.assertNotIn("Traceback", err)
        return err

    def test_malformed_welcomes_end_the_worker_with_exit_1_and_the_reason(self) -> None:
        cases = {
            b"this is not json\n": "not valid JSON",
            b'{"type":"welcome","v":1,"run_id":"r1","stage_id":0,"replica_id":0,"metadata":{}}\n': "engine_args must be an object",
            b'{"type":"welcome","v":1,"run_id":7,"stage_id":0,"replica_id":0,"engine_args":{},"metadata":{}}\n': "run_id must be a string",
            b'{"type":"welcome","v":1,"run_id":"r","stage_id":0,"replica_id":0,"engine_args":{},"metadata":{},"connectors":{"C":1}}\n': "connectors must map names",
            b'{"type":"welcome","v":2,"run_id":"r","stage_id":0,"replica_id":0,"engine_args":{},"metadata":{}}\n': "protocol v2, this worker v1",
            b'{"type":"request","request_id":"x","input":1,"params":{}}\n': 'expected welcome, got "request"',
            b'{"type":"party"}\n': 'unknown orchestrator message type "party"',
            b'{"no_type":true}\n': 'has no "type"',
        }
        for answer, reason in cases.items():
            with self.subTest(answer=answer):
                o = Orchestrator()
                self.addCleanup(o.close)
                err = self.refused(answer, o)
                self.assertIn("omnistage worker failed: OMNI_PROTOCOL:", err)
                self.assertIn(reason, err)

    def test_an_error_during_the_handshake_is_reported_and_exits_1(self) -> None:
        err = self.refused(b'{"type":"error","code":"OMNI_PROTOCOL","message":"unknown token"}\n')
        self.assertIn("the orchestrator rejected this worker: OMNI_PROTOCOL: unknown token", err)

    def test_a_connection_closed_during_the_handshake_exits_1(self) -> None:
        o = self.orch
        o.start()
        o.accept()
        o.hang_up()
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn("closed the connection during the handshake", err)

    def test_garbage_after_the_welcome_is_a_protocol_error_and_the_worker_exits(self) -> None:
        o = self.orch
        o.start()
        o.attach()
        o.send(b"{not json}\n")
        code, out, err = o.wait_exit()
        self.assertEqual(code, 0)
        self.assertIn("control protocol error", err)
        self.assertIn("shutdown: control protocol error", out)

    def test_missing_environment_is_a_clear_error(self) -> None:
        o = self.orch
        o.start(drop_env="OMNISTAGE_TOKEN")
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn("OMNISTAGE_TOKEN is not set", err)
        self.assertIn("start it through omnistage", err)

    def test_unreachable_orchestrator_is_a_clear_error(self) -> None:
        o = self.orch
        o.start(env={"OMNISTAGE_CONTROL": os.path.join(o.dir, "nobody.sock")})
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn("cannot reach the orchestrator at", err)

    def test_an_entry_without_its_class_or_handle_is_refused_before_connecting(self) -> None:
        for entry, reason in (("echo_engine.py:Nope", "has no class Nope"), ("orchestrator_absent.py", "does not exist"),
                              ("payload_engine.py:pattern", "has no class pattern"),
                              ("echo_engine.py", "has no handle(request, stream)")):
            with self.subTest(entry=entry):
                o = Orchestrator()
                self.addCleanup(o.close)
                o.start(entry)
                code, _, err = o.wait_exit()
                self.assertEqual(code, 1)
                self.assertIn(reason, err)


if __name__ == "__main__":
    unittest.main()
