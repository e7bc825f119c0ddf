"""Init phases in the Python SDK (docs/protocol.md "Init phases"): ``connect(phases=True)`` declares
them in hello; ``conn.exclusive(fn)`` and ``with conn.exclusive():`` ask for a window and run only
once it is granted; an orchestrator that does not grant phases is never asked."""

import os
import sys
import unittest

from harness import FIXTURES, SRC, Orchestrator, welcome

WORKER = os.path.join(FIXTURES, "phased_worker.py")


class PhasesTest(unittest.TestCase):
    def setUp(self) -> None:
        self.orch = Orchestrator()
        self.addCleanup(self.orch.close)

    def logs(self):
        return [m["message"] for m in self.orch.messages if m["type"] == "log"]

    def test_windows_are_asked_for_and_run_only_once_granted(self) -> None:
        o = self.orch
        o.start(argv=[sys.executable, WORKER, SRC])
        hello = o.accept()
        self.assertEqual(hello.get("phases"), 1)
        o.send(welcome(phases=1))
        o.recv_until(lambda m: m["type"] == "window_request")
        request = o.messages[-1]
        self.assertEqual(request, {"type": "window_request", "window": 1})
        self.assertEqual(self.logs(), ["loaded"])  # nothing of the window ran before the grant
        o.send({"type": "window_granted", "window": 1})
        o.recv_until(lambda m: m["type"] == "window_end")
        self.assertEqual(o.messages[-1], {"type": "window_end", "window": 1})
        self.assertEqual(self.logs(), ["loaded", "profiling 1"])
        o.recv_until(lambda m: m["type"] == "window_request")
        self.assertEqual(o.messages[-1]["window"], 2)
        self.assertEqual(self.logs(), ["loaded", "profiling 1", "window 1 returned profiled"])
        o.send({"type": "window_granted", "window": 2})
        o.recv_until(lambda m: m["type"] == "window_end")
        self.assertEqual(self.logs()[-1], "profiling 2")
        o.recv_until(lambda m: m["type"] == "window_request")
        o.send({"type": "window_granted", "window": 3})
        ready = o.recv_until(lambda m: m["type"] == "ready")[-1]
        self.assertEqual(ready["info"], {"phases": 1})
        self.assertTrue(any("one window at a time" in t for t in self.logs()), self.logs())
        self.assertEqual([m["window"] for m in o.messages if m["type"] == "window_end"], [1, 2, 3])

    def test_without_granted_phases_nothing_is_asked(self) -> None:
        o = self.orch
        o.start(argv=[sys.executable, WORKER, SRC])
        self.assertEqual(o.accept().get("phases"), 1)
        o.send(welcome())  # an orchestrator that does not grant phases: the whole init is exclusive
        ready = o.recv_until(lambda m: m["type"] == "ready")[-1]
        self.assertIsNone(ready["info"]["phases"])
        self.assertFalse(any(m["type"].startswith("window") for m in o.messages), o.messages)
        self.assertIn("profiling 2", self.logs())

    def test_an_error_while_waiting_fails_the_window(self) -> None:
        o = self.orch
        o.start(argv=[sys.executable, WORKER, SRC])
        o.accept()
        o.send(welcome(phases=1))
        o.recv_until(lambda m: m["type"] == "window_request")
        o.send({"type": "error", "code": "OMNI_LOCK_TIMEOUT", "message": "device 0 is held by pid 1"})
        code, _out, err = o.wait_exit()
        self.assertNotEqual(code, 0)
        self.assertIn("OMNI_LOCK_TIMEOUT", err)
        self.assertNotIn("profiling 1", self.logs())


if __name__ == "__main__":
    unittest.main()
