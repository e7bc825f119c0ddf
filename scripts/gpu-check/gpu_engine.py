"""The engine of scripts/gpu-check.sh, on the Python worker SDK: at setup it records which devices
it was given and allocates memory on them; each request runs a matmul and reports its speed.

On ``platform: cuda`` it uses torch on the GPU(s) omnistage mapped (``CUDA_VISIBLE_DEVICES``); on
``cpu`` (the dry run CI does) a pure-Python matmul on a bytearray, so every other step is the same.
Reports are JSON files in ``report_dir`` that check.py reads.
"""

import json
import os
import subprocess
import time


def write_report(args, name, data):
    path = os.path.join(args["report_dir"], name)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def smi_apps():
    """(pid, gpu uuid) of every compute process nvidia-smi sees, or None without nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,gpu_uuid", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [[int(p.strip()), u.strip()] for p, u in (line.split(",") for line in out.splitlines() if "," in line)]


class GpuCheck:
    def setup(self, conn):
        t0 = time.time()
        self.conn, self.args = conn, conn.engine_args
        self.cuda = self.args["platform"] == "cuda"
        var = "CUDA_VISIBLE_DEVICES" if self.cuda else "OMNISTAGE_VISIBLE_DEVICES"
        info = {"pid": os.getpid(), "stage": conn.welcome["stage_id"], "replica": conn.welcome["replica_id"],
                "visible_var": var, "visible": os.environ.get(var), "t_start": t0}
        alloc = int(self.args.get("alloc_mib", 64)) << 20
        if self.cuda:
            import torch  # noqa: PLC0415 - only the GPU path needs it

            self.torch = torch
            info["device_count"] = torch.cuda.device_count()
            info["uuids"] = [str(torch.cuda.get_device_properties(i).uuid) for i in range(info["device_count"])]
            self.held = torch.empty(alloc, dtype=torch.uint8, device="cuda:0")
            self.held.fill_(1)
            torch.cuda.synchronize()
        else:
            visible = info["visible"]
            info["device_count"] = len(visible.split(",")) if visible else 0
            self.held = bytearray(alloc)
        info["allocated_bytes"] = alloc
        # Holding the init lock a while makes an overlap visible if same-device inits were not serialised.
        time.sleep(float(self.args.get("init_hold_s", 0)))
        info["t_end"] = time.time()
        write_report(self.args, f"setup-s{info['stage']}r{info['replica']}.json", info)
        return {"pid": info["pid"], "device_count": info["device_count"]}

    def matmul(self):
        """(n, seconds, TFLOP/s) of the best of a few n×n matmuls."""
        if self.cuda:
            torch = self.torch
            n = int(self.args.get("n", 8192))
            a = torch.randn(n, n, device="cuda:0", dtype=torch.float16)
            b = torch.randn(n, n, device="cuda:0", dtype=torch.float16)
            a @ b  # warm-up (kernel selection)
            torch.cuda.synchronize()
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                a @ b
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t)
        else:
            n = int(self.args.get("n", 48))
            a = [[(i * n + j) % 7 * 0.5 for j in range(n)] for i in range(n)]
            bt = [list(col) for col in zip(*a)]
            t = time.perf_counter()
            [[sum(x * y for x, y in zip(row, col)) for col in bt] for row in a]
            best = time.perf_counter() - t
        best = max(best, 1e-9)
        return n, best, 2 * n ** 3 / best / 1e12

    def handle(self, request, stream):
        n, seconds, tflops = self.matmul()
        stage, replica = self.conn.welcome["stage_id"], self.conn.welcome["replica_id"]
        report = {"pid": os.getpid(), "n": n, "seconds": seconds, "tflops": tflops,
                  "smi": smi_apps() if self.cuda else None}
        write_report(self.args, f"request-s{stage}r{replica}-{request.request_id.replace(':', '_')}.json", report)
        return {"kind": "final", "text": f"stage {stage}: {n}x{n} matmul at {tflops:.4g} TFLOP/s"}
