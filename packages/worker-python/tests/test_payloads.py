"""Payloads through the Python SDK (docs/protocol.md, "Payloads"): the stage's connector decides
inline or shared memory; files are written once, mode 0600, named omnistage-<run>-<key>, read by
key with mmap, acknowledged; the same rules and formats as core's shm-store and payload-ref."""

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import unittest

from harness import SRC, Orchestrator

sys.path.insert(0, SRC)
from omnistage_worker import payloads  # noqa: E402

THRESHOLD = 1024
SHM_ARGS = {"omni_kv_config": {"connector_config": {"type": "SharedMemoryConnector", "shm_threshold_bytes": THRESHOLD, "role": "sender"}}}


def pattern(size: int, seed: int) -> bytes:
    return bytes((i * 31 + seed) & 0xFF for i in range(size))


class PayloadRulesTest(unittest.TestCase):
    def private_dir(self) -> str:
        """A private temp dir for one test, removed after it (FIFOs and links included)."""
        d = tempfile.mkdtemp(prefix="omnistage-pytest-payloads-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_the_output_connector_is_read_from_the_engine_args_like_core_does(self) -> None:
        of = payloads.output_connector_of
        self.assertEqual(of(SHM_ARGS), payloads.OutputConnector("SharedMemoryConnector", THRESHOLD))
        self.assertEqual(of({"omni_kv_config": {"connector_config": {"type": "SharedMemoryConnector"}}}).shm_threshold_bytes, 65536)
        self.assertEqual(of({"omni_kv_config": {"connector_config": {"type": "SharedMemoryConnector", "shm_threshold_bytes": 1 << 30}}}).shm_threshold_bytes, 4 << 20)
        # a receiver-only config is the input side; no connector or an unknown class: inline
        self.assertEqual(of({"omni_kv_config": {"connector_config": {"type": "SharedMemoryConnector", "role": "receiver"}}}).type, "InlineConnector")
        self.assertEqual(of({}).type, "InlineConnector")
        self.assertEqual(of({"omni_kv_config": {"connector_config": {"type": "MooncakeConnector"}}}).type, "InlineConnector")
        self.assertEqual(of({"omni_kv_config": {"connector_config": {"type": "DirConnector"}}}, ["DirConnector"]),
                         payloads.OutputConnector("DirConnector", 4 << 20, plugin=True))

    def test_inline_references_match_core_byte_for_byte(self) -> None:
        # FNV-1a 32 of "a" is 0xe40c292c: the same key core's inlinePayloadRef gives.
        self.assertEqual(payloads.inline_payload_ref(b"a", {"mime": "text/plain"}),
                         {"$payload": 1, "key": "i_e40c292c", "size": 1, "via": "inline", "mime": "text/plain", "data_base64": "YQ=="})
        self.assertEqual(payloads.inline_payload_ref(b"")["key"], "i_811c9dc5")

    def test_references_are_found_at_the_top_and_one_level_down_only(self) -> None:
        ref = {"$payload": 1, "key": "k_1", "size": 3, "via": "shm"}
        self.assertEqual(payloads.find_payload_refs(ref), [ref])
        self.assertEqual(payloads.find_payload_refs({"tensor": ref, "x": 1}), [ref])
        self.assertEqual(payloads.find_payload_refs([{"tensor": ref}, {"t": ref}]), [ref, ref])
        self.assertEqual(payloads.find_payload_refs({"a": {"b": {"c": ref}}}), [])
        bad = [dict(ref, key="has-dash"), dict(ref, size=-1), dict(ref, size=True), dict(ref, via="inline"), dict(ref, **{"$payload": 2})]
        self.assertEqual([payloads.is_payload_ref(b) for b in bad], [False] * 5)

    def test_a_payload_in_a_pool_segment_is_copied_under_the_segments_lock(self) -> None:
        import fcntl
        d = self.private_dir()
        store = payloads.PayloadStore("run-1", 0, 0, d)
        segment = os.path.join(d, "omnistage-run-1=ab_0")
        with open(segment, "wb") as f:
            f.write(pattern(3000, 5) + bytes(65536 - 3000))
        os.link(segment, store.path("k_1"))  # what core's pool does: the key is a link to the segment
        got = store.read("k_1", size=3000, segment_bytes=65536)
        self.assertEqual(bytes(got), pattern(3000, 5))
        self.assertIsInstance(got.obj, bytearray)  # a copy: the segment may be rewritten after the ack
        with self.assertRaisesRegex(payloads.PayloadError, "reference says a segment of 131072"):
            store.read("k_1", size=3000, segment_bytes=131072)
        with open(segment, "rb") as producer:  # the producer rewriting it holds the lock exclusively
            fcntl.flock(producer.fileno(), fcntl.LOCK_EX)
            with self.assertRaisesRegex(payloads.PayloadError, "payload k_1 is gone"):
                store.read("k_1", size=3000, segment_bytes=65536)

    def test_a_link_or_a_fifo_at_a_payload_name_is_refused(self) -> None:
        d = self.private_dir()
        store = payloads.PayloadStore("run-1", 0, 0, d)
        secret = os.path.join(d, "secret")
        with open(secret, "wb") as f:
            f.write(b"0123456789")
        os.symlink(secret, store.path("k_link"))
        with self.assertRaisesRegex(payloads.PayloadError, "opening payload k_link"):
            store.read("k_link", size=10)
        os.mkfifo(store.path("k_fifo"))
        with self.assertRaisesRegex(payloads.PayloadError, "not a regular file"):
            store.read("k_fifo", size=10)

    def test_a_store_writes_once_and_reads_back_mapped_or_into_a_buffer(self) -> None:
        d = self.private_dir()
        store = payloads.PayloadStore("run-1", 2, 3, d)
        key = store.next_key()
        self.assertRegex(key, r"^s2r3_[0-9a-f]{8}_0$")
        self.assertRegex(store.next_key(), r"_1$")
        path = store.write(key, memoryview(pattern(5000, 4)))
        self.assertEqual(path, os.path.join(d, f"omnistage-run-1-{key}"))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with self.assertRaisesRegex(payloads.PayloadError, "failed: File exists"):
            store.write(key, b"again")  # exclusive: never overwritten
        view = store.read(key, size=5000)
        os.unlink(path)  # the mapping outlives the file
        self.assertEqual(bytes(view), pattern(5000, 4))
        self.assertTrue(view.readonly)
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode) & 0o777, 0o700)  # mkdtemp: private dir
        store.write("k2", b"abc")
        buf = bytearray(8)
        self.assertEqual(bytes(store.read("k2", into=buf)), b"abc")
        self.assertEqual(bytes(buf[:3]), b"abc")
        with self.assertRaisesRegex(payloads.PayloadError, "has 3 bytes, its reference says 4"):
            store.read("k2", size=4)
        with self.assertRaisesRegex(payloads.PayloadError, "the buffer to read it into only 2"):
            store.read("k2", into=bytearray(2))
        with self.assertRaisesRegex(payloads.PayloadError, "not valid"):
            store.path("../etc")


class PayloadWorkerTest(unittest.TestCase):
    """A real worker process moves payloads; this test plays the orchestrator and the consumer."""

    def setUp(self) -> None:
        self.orch = Orchestrator()
        self.addCleanup(self.orch.close)
        self.dir = tempfile.mkdtemp(prefix="omnistage-payloads-")
        self.orch.start("payload_engine.py")
        ready = self.orch.attach(run_id="prun", engine_args=SHM_ARGS, payload_dir=self.dir)
        self.assertEqual(ready["info"], {"connector": ["SharedMemoryConnector", THRESHOLD]})

    def tearDown(self) -> None:
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def test_small_payloads_go_inline_and_larger_ones_to_a_file_in_the_welcomes_payload_dir(self) -> None:
        o = self.orch
        small = o.request("s", {"size": THRESHOLD, "seed": 1})[-1]["data"]["tensor"]
        self.assertEqual(small["via"], "inline")
        self.assertEqual(payloads.decode_inline(small).tobytes(), pattern(THRESHOLD, 1))
        self.assertEqual(os.listdir(self.dir), [])

        msgs = o.request("b", {"size": 70 * 1024, "seed": 2})
        big = msgs[-1]["data"]["tensor"]
        self.assertEqual(set(big), {"$payload", "key", "size", "via", "dtype", "shape"})
        self.assertEqual((big["via"], big["size"], big["dtype"], big["shape"]), ("shm", 70 * 1024, "uint8", [70 * 1024]))
        self.assertRegex(big["key"], r"^s0r0_[0-9a-f]{8}_[0-9a-z]+$")
        self.assertEqual(os.listdir(self.dir), [f"omnistage-prun-{big['key']}"])
        path = os.path.join(self.dir, f"omnistage-prun-{big['key']}")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), pattern(70 * 1024, 2))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        # Only the reference crossed the socket.
        self.assertLess(sum(len(repr(m)) for m in msgs), 1024)

    def test_a_consumer_reads_a_stored_payload_by_key_and_acknowledges_it_after_use(self) -> None:
        o = self.orch
        big = o.request("p", {"size": 100_000, "seed": 3})[-1]["data"]["tensor"]
        path = os.path.join(self.dir, f"omnistage-prun-{big['key']}")
        o.send({"type": "request", "request_id": "c", "input": {"tensor": big}, "params": {"hold_s": 0.2}})
        first = o.recv()
        self.assertEqual(first["data"], {"read": big["key"]})
        self.assertFalse(any(m["type"] == "payload_ack" for m in o.messages))  # in use: not yet acknowledged
        rest = o.recv_until(lambda m: m.get("done") is True)
        self.assertEqual(rest[0], {"type": "payload_ack", "key": big["key"]})  # before the output that ends the request
        self.assertEqual(rest[-1]["data"], {"sha256": hashlib.sha256(pattern(100_000, 3)).hexdigest(), "size": 100_000,
                                            "via": "shm", "key": big["key"], "mapped": True})
        os.unlink(path)  # what the orchestrator does on the last ack
        # read into a staging buffer; an inline reference is never acknowledged
        ref = payloads.inline_payload_ref(b"xyz")
        out = o.request("i", {"tensor": ref}, {"into": True})
        self.assertEqual(out[-1]["data"]["sha256"], hashlib.sha256(b"xyz").hexdigest())
        self.assertFalse(any(m["type"] == "payload_ack" and m["key"] == ref["key"] for m in o.messages))

    def test_reading_a_payload_that_is_gone_fails_the_request_clearly(self) -> None:
        ghost = {"$payload": 1, "key": "nothing_here", "size": 10, "via": "shm"}
        err = self.orch.request("g", {"tensor": ghost})[-1]
        self.assertEqual(err["type"], "request_error")
        self.assertIn("payload nothing_here is gone", err["message"])
        other = {"$payload": 1, "key": "k", "size": 10, "via": "DirConnector"}
        err = self.orch.request("o", {"tensor": other})[-1]
        self.assertIn('came through connector "DirConnector", which the Python worker SDK cannot read', err["message"])

    def test_in_head_mode_a_stored_reference_names_its_host_and_one_from_another_host_is_refused_clearly(self) -> None:
        o = Orchestrator()
        self.addCleanup(o.close)
        o.start("payload_engine.py")
        plane = {"host_id": "gpu-7", "url": "tcp://127.0.0.7:7331", "token": "t", "max_bytes": 1 << 30, "timeout_ms": 1000}
        o.attach(run_id="prun", engine_args=SHM_ARGS, payload_dir=self.dir, payload_plane=plane)
        big = o.request("h", {"size": 70 * 1024, "seed": 4})[-1]["data"]["tensor"]
        self.assertEqual(big["origin"], {"host_id": "gpu-7", "url": "tcp://127.0.0.7:7331"})
        os.unlink(os.path.join(self.dir, f"omnistage-prun-{big['key']}"))
        remote = {**big, "origin": {"host_id": "gpu-8", "url": "tcp://127.0.0.8:7331"}}
        err = o.request("r", {"tensor": remote})[-1]
        self.assertEqual(err["type"], "request_error")
        self.assertIn("is stored on host 'gpu-8', and the Python worker SDK cannot fetch payloads from other hosts", err["message"])


if __name__ == "__main__":
    unittest.main()
