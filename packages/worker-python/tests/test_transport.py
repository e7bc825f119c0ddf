"""The endpoint forms of the Node SDK: ``tcp://HOST:PORT`` (a head on another host) and mutual TLS
over it (``OMNISTAGE_TLS_CERT``/``_KEY``/``_CA``), against real worker processes and a stand-in
orchestrator on 127.0.0.1. Certificates are made with the openssl CLI in a temp dir."""

import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

from harness import Orchestrator

HAS_OPENSSL = shutil.which("openssl") is not None
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(root: str) -> dict:
    """A CA, a head certificate for IP 127.0.0.1, a client certificate, and an unrelated CA."""
    paths = {name: (os.path.join(root, f"{name}.crt"), os.path.join(root, f"{name}.key")) for name in ("ca", "other", "head", "agent")}
    for ca in ("ca", "other"):
        _openssl("req", "-x509", *EC, "-keyout", paths[ca][1], "-out", paths[ca][0], "-days", "2", "-subj", f"/CN={ca}")
    leaves = {"head": ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1"], "agent": ["extendedKeyUsage=clientAuth"]}
    for name, ext in leaves.items():
        addext = [a for e in ["basicConstraints=CA:FALSE", *ext] for a in ("-addext", e)]
        _openssl("req", "-x509", *EC, "-keyout", paths[name][1], "-out", paths[name][0], "-days", "2", "-subj", f"/CN={name}",
                 "-CA", paths["ca"][0], "-CAkey", paths["ca"][1], *addext)
    return paths


def server_context(certs: dict, trust: str = "ca") -> ssl.SSLContext:
    """What a head's control port does: its certificate, a client certificate required, TLS ≥ 1.2."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(*certs["head"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=certs[trust][0])
    return ctx


class TcpEndpointTest(unittest.TestCase):
    def test_tcp_endpoint_hello_request_shutdown(self) -> None:
        o = Orchestrator(tcp=True)
        self.addCleanup(o.close)
        o.start()
        self.assertEqual(o.attach(engine_args={"model": "m"})["type"], "ready")
        self.assertEqual(o.request("q1", "over tcp")[-1]["data"], {"echo": "over tcp", "part": 1, "engine_args": {"model": "m"}})
        o.send({"type": "shutdown", "reason": "done"})
        code, out, err = o.wait_exit()
        self.assertEqual(code, 0, err)
        self.assertIn("shutdown: done", out)

    def test_dials_from_the_host_address_an_agent_gives(self) -> None:
        o = Orchestrator(tcp=True)
        self.addCleanup(o.close)
        o.start(env={"OMNISTAGE_HOST_ADDRESS": "127.0.0.7"})
        o.accept()
        # The head sees which "host" connected: the worker's local address is the agent's --advertise.
        self.assertEqual(o.conn.getpeername()[0], "127.0.0.7")
        o.hang_up()
        self.assertEqual(o.wait_exit()[0], 1)

    def test_an_unreachable_tcp_endpoint_fails_naming_it(self) -> None:
        o = Orchestrator(tcp=True)
        self.addCleanup(o.close)
        endpoint = o.path
        o.server.close()  # bound, then closed: nothing listens there
        o.start()
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn(f"cannot reach the orchestrator at {endpoint}", err)


@unittest.skipUnless(HAS_OPENSSL or os.environ.get("CI"), "openssl is not installed (.ci/run installs it)")
class MutualTlsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="omnistage-pytls-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.certs = make_certs(self.root)

    def env(self, ca: str = "ca") -> dict:
        return {"OMNISTAGE_TLS_CERT": self.certs["agent"][0], "OMNISTAGE_TLS_KEY": self.certs["agent"][1], "OMNISTAGE_TLS_CA": self.certs[ca][0]}

    def test_attaches_over_mutual_tls_presenting_its_certificate_and_streams_large_messages(self) -> None:
        o = Orchestrator(tcp=True, tls=server_context(self.certs))
        self.addCleanup(o.close)
        o.start(env=self.env())
        o.attach()
        subject = dict(pair[0] for pair in o.conn.getpeercert()["subject"])
        self.assertEqual(subject["commonName"], "agent")
        self.assertEqual(o.conn.version() in ("TLSv1.2", "TLSv1.3"), True)
        # Bigger than a TLS record and a socket buffer both ways: the pump thread carries it whole.
        big = "x" * (3 * 1024 * 1024)
        o.send({"type": "request", "request_id": "big", "input": big, "params": {}})
        o.send({"type": "request", "request_id": "small", "input": "after", "params": {}})
        done = set()
        got = o.recv_until(lambda m: m.get("done") is True and not done.add(m["request_id"]) and done == {"big", "small"}, timeout=60)
        echoed = [m["data"]["echo"] for m in got if m.get("request_id") == "big"]
        self.assertEqual([len(e) for e in echoed], [len(big), len(big)])
        self.assertTrue(all(e == big for e in echoed))
        o.send({"type": "shutdown", "reason": "tls done"})
        code, out, err = o.wait_exit()
        self.assertEqual(code, 0, err)
        self.assertIn("shutdown: tls done", out)

    def test_a_head_certificate_of_another_ca_is_refused_by_the_worker(self) -> None:
        o = Orchestrator(tcp=True, tls=server_context(self.certs))
        self.addCleanup(o.close)
        o.start(env=self.env(ca="other"))
        with self.assertRaises((ssl.SSLError, OSError)):
            o.accept()
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn(f"the TLS handshake with the orchestrator at {o.path} failed", err)
        self.assertIn("certificate verify failed", err)

    def test_a_head_that_does_not_trust_the_worker_certificate_refuses_it(self) -> None:
        o = Orchestrator(tcp=True, tls=server_context(self.certs, trust="other"))
        self.addCleanup(o.close)
        o.start(env=self.env())
        with self.assertRaises((ssl.SSLError, OSError)):
            o.accept()
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn("omnistage worker failed: OMNI_PROTOCOL: the orchestrator refused this worker's TLS connection", err)

    def test_half_a_set_of_tls_variables_and_unreadable_files_are_refused(self) -> None:
        o = Orchestrator(tcp=True)
        self.addCleanup(o.close)
        o.start(env={"OMNISTAGE_TLS_CA": self.certs["ca"][0]})
        code, _, err = o.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn("OMNISTAGE_TLS_CERT, OMNISTAGE_TLS_KEY, OMNISTAGE_TLS_CA go together; only OMNISTAGE_TLS_CA is set", err)
        o2 = Orchestrator(tcp=True)
        self.addCleanup(o2.close)
        o2.start(env={**self.env(), "OMNISTAGE_TLS_KEY": os.path.join(self.root, "missing.key")})
        code, _, err = o2.wait_exit()
        self.assertEqual(code, 1)
        self.assertIn(f"cannot read OMNISTAGE_TLS_KEY={os.path.join(self.root, 'missing.key')}", err)


if __name__ == "__main__":
    unittest.main()
