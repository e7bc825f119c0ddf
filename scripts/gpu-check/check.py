"""scripts/gpu-check.sh's driver (python3, standard library): runs omnistage on this machine's
GPUs and checks what the plan promised. Exit 0 when every check passed, 1 otherwise.

Checks: each replica sees exactly the devices the plan mapped (its device variable, torch's device
count and GPU uuid, and nvidia-smi's pid → GPU table); admission refuses an over-committed GPU;
init locks serialise two replicas on one GPU; after teardown no pid of the run is on any GPU (or,
on cpu, alive). Figures: bring-up per replica and matmul TFLOP/s. ``--platform cpu`` (the dry run
CI does) runs the same pipelines on virtual devices and skips what needs torch or nvidia-smi.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLI = os.path.join(ROOT, "packages", "cli", "bin", "omnistage.js")


class Checks:
    def __init__(self):
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}

    def report(self, status, name, detail):
        self.counts[status] += 1
        print(f"{status} {name}: {detail}", flush=True)

    def expect(self, ok, name, detail):
        self.report("PASS" if ok else "FAIL", name, detail)
        return ok


def norm_uuid(u):
    u = str(u).strip()
    return u[4:] if u.startswith("GPU-") else u


def gpus():
    """[(index, uuid)] of the GPUs nvidia-smi lists."""
    out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"], capture_output=True, text=True, check=True).stdout
    return [(i.strip(), norm_uuid(u)) for i, u in (line.split(",") for line in out.splitlines() if "," in line)]


def smi_pids():
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,gpu_uuid", "--format=csv,noheader"], capture_output=True, text=True).stdout
    return [(int(p.strip()), norm_uuid(u)) for p, u in (line.split(",") for line in out.splitlines() if "," in line)]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def pipeline(path, platform, devices, work, name, extra):
    """A two-stage pipeline of gpu_engine.py replicas, stage 1 fed by stage 0."""
    report_dir = os.path.join(work, f"reports-{name}")
    os.makedirs(report_dir)
    lines = ["stage_args:"]
    for i, dev in enumerate(devices):
        args = {"entry": os.path.join(HERE, "gpu_engine.py") + ":GpuCheck", "platform": platform, "report_dir": report_dir, **extra}
        lines += [f"  - stage_id: {i}", "    stage_type: llm", "    engine: python", f'    runtime: {{ devices: "{dev}" }}',
                  f"    engine_args: {json.dumps(args)}"]
        if i > 0:
            lines.append(f"    engine_input_source: [{i - 1}]")
        lines.append("    final_output: true")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return report_dir


def omnistage(node, argv, work):
    env = dict(os.environ, OMNISTAGE_LOCK_DIR=os.path.join(work, "locks"))
    return subprocess.run([node, CLI, *argv], capture_output=True, text=True, env=env, timeout=900)


def read_json_files(d, prefix):
    out = {}
    for name in sorted(os.listdir(d)):
        if name.startswith(prefix) and name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                out[name] = json.load(f)
    return out


def events_of(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_pipeline(c, node, yaml, platform, work, tag):
    events = os.path.join(work, f"{tag}.events.jsonl")
    t = time.monotonic()
    r = omnistage(node, ["run", yaml, "--platform", platform, "--input", "gpu check", "--json", "--events", events], work)
    wall = time.monotonic() - t
    if not c.expect(r.returncode == 0, f"{tag} run", f"omnistage run exited {r.returncode} in {wall:.1f} s"):
        sys.stdout.write(r.stderr[-3000:])
        return None
    return events_of(events)


def check_mapping(c, node, platform, work, devices, gpu_list):
    yaml = os.path.join(work, "mapping.yaml")
    reports = pipeline(yaml, platform, devices, work, "mapping", {"alloc_mib": 256, "gpu_memory_utilization": 0.3})
    plan = json.loads(omnistage(node, ["plan", yaml, "--platform", platform, "--json"], work).stdout)
    mapped = {(s["stage_id"], r["replica_id"]): r["physical_devices"] for s in plan["stages"] for r in s["replicas"]}
    events = run_pipeline(c, node, yaml, platform, work, "mapping")
    if events is None:
        return
    setups = {(s["stage"], s["replica"]): s for s in read_json_files(reports, "setup-").values()}
    requests = list(read_json_files(reports, "request-").values())
    uuid_of = dict(gpu_list)
    run_pids = {e["pid"] for e in events if e["type"] == "replica:spawned"} | {s["pid"] for s in setups.values()}
    for key, physical in sorted(mapped.items()):
        s = setups.get(key)
        name = f"mapping stage {key[0]} replica {key[1]}"
        if s is None:
            c.report("FAIL", name, "the replica wrote no setup report")
            continue
        c.expect(s["visible"] == ",".join(physical), name, f"{s['visible_var']}={s['visible']}, plan mapped {physical}")
        c.expect(s["device_count"] == len(physical), name + " device count",
                 f"{'torch.cuda.device_count()' if platform == 'cuda' else 'devices'} = {s['device_count']}, plan {len(physical)}")
        if platform != "cuda":
            c.report("SKIP", name + " GPU identity", "--platform cpu: no torch, no nvidia-smi")
            continue
        want = [uuid_of.get(p) for p in physical]
        c.expect([norm_uuid(u) for u in s["uuids"]] == want, name + " GPU uuid", f"torch sees {s['uuids']}, plan's GPUs are {want}")
        snapshot = next((r["smi"] for r in requests if r["smi"] is not None), None)
        on = sorted({norm_uuid(u) for p, u in snapshot or [] if p == s["pid"]})
        if snapshot is not None and not any(p in run_pids for p, _ in snapshot):
            c.report("SKIP", name + " nvidia-smi pids", "nvidia-smi lists no pid of this run (a container pid namespace?)")
        else:
            c.expect(on == sorted(want), name + " nvidia-smi pids", f"pid {s['pid']} is on {on}, plan {sorted(want)}")
    ready = {(e["stage_id"], e["replica_id"]): e["duration_ms"] for e in events if e["type"] == "replica:ready"}
    for key, ms in sorted(ready.items()):
        s = setups.get(key, {})
        init = (s.get("t_end", 0) - s.get("t_start", 0)) * 1000
        print(f"FIGURE bring-up stage {key[0]} replica {key[1]}: {ms:.0f} ms lock+spawn+attach (engine setup {init:.0f} ms, "
              f"{s.get('allocated_bytes', 0) >> 20} MiB allocated)")
    for r in requests:
        print(f"FIGURE matmul pid {r['pid']}: {r['n']}x{r['n']} in {r['seconds'] * 1000:.2f} ms = {r['tflops']:.4g} TFLOP/s"
              + ("" if platform == "cuda" else " (pure-Python CPU fallback)"))
    check_teardown(c, platform, run_pids)


def check_teardown(c, platform, run_pids):
    left = [p for p in run_pids if alive(p)]
    c.expect(not left, "teardown processes", f"{len(run_pids)} pids of the run, alive after it: {left}")
    if platform != "cuda":
        c.report("SKIP", "teardown GPUs", "--platform cpu: no nvidia-smi")
        return
    on_gpu = [(p, u) for p, u in smi_pids() if p in run_pids]
    c.expect(not on_gpu, "teardown GPUs", f"pids of the run still on a GPU: {on_gpu}")


def check_admission(c, node, platform, work):
    yaml = os.path.join(work, "overcommit.yaml")
    pipeline(yaml, platform, ["0", "0"], work, "overcommit", {"gpu_memory_utilization": 0.6})
    r = omnistage(node, ["plan", yaml, "--platform", platform], work)
    c.expect(r.returncode == 2 and "OMNI_PLAN_OVERCOMMIT" in r.stderr, "admission",
             f"two replicas at gpu_memory_utilization 0.6 on GPU 0: exit {r.returncode}, "
             f"{'OMNI_PLAN_OVERCOMMIT' if 'OMNI_PLAN_OVERCOMMIT' in r.stderr else r.stderr.strip()[-300:]}")


def check_locks(c, node, platform, work):
    yaml = os.path.join(work, "locks.yaml")
    reports = pipeline(yaml, platform, ["0", "0"], work, "locks", {"alloc_mib": 64, "init_hold_s": 1.0, "gpu_memory_utilization": 0.3})
    events = run_pipeline(c, node, yaml, platform, work, "locks")
    if events is None:
        return
    spans = sorted((s["t_start"], s["t_end"], s["stage"]) for s in read_json_files(reports, "setup-").values())
    disjoint = len(spans) == 2 and spans[0][1] <= spans[1][0]
    c.expect(disjoint, "locks serialise same-GPU init",
             " then ".join(f"stage {st} init {a % 1000:.2f}-{b % 1000:.2f} s" for a, b, st in spans))
    order = [(e["type"], e["stage_id"]) for e in events if e["type"] in ("lock:acquired", "lock:released")]
    paired = len(order) == 4 and order[0][0] == "lock:acquired" and order[1] == ("lock:released", order[0][1])
    c.expect(paired, "lock events", " → ".join(f"{t.split(':')[1]} s{s}" for t, s in order))
    check_teardown(c, platform, {s["pid"] for s in read_json_files(reports, "setup-").values()})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node", required=True)
    ap.add_argument("--platform", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (pipelines, reports, events)")
    opts = ap.parse_args()
    c = Checks()
    work = tempfile.mkdtemp(prefix="omnistage-gpu-check-")
    try:
        if opts.platform == "cuda":
            gpu_list = gpus()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            count = len(visible.split(",")) if visible else len(gpu_list)
            print(f"GPUs: {', '.join(f'{i} {u}' for i, u in gpu_list)}" + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible else ""))
        else:
            gpu_list, count = [], 2
            print("platform cpu: virtual devices 0 and 1; torch and nvidia-smi checks are skipped", flush=True)
        devices = ["0", "1" if count >= 2 else "0"]
        check_mapping(c, opts.node, opts.platform, work, devices, gpu_list)
        check_admission(c, opts.node, opts.platform, work)
        check_locks(c, opts.node, opts.platform, work)
    finally:
        if opts.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"gpu-check ({opts.platform}): {c.counts['PASS']} passed, {c.counts['FAIL']} failed, {c.counts['SKIP']} skipped")
    return 1 if c.counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
