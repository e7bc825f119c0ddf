/**
 * The `python` engine's two inputs, checked before anything starts: the engine file
 * (`engine_args.entry: ./my_engine.py[:Class]`, relative to the pipeline file) and the interpreter
 * (`engine_args.python`, else `$OMNISTAGE_PYTHON`, else `python3`). Both are errors at their YAML
 * line (exit 2), never a replica that dies at attach.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { OmniError, type StageConfig } from '@omnistage/core';

/** Environment variable naming the interpreter when the stage does not (`engine_args.python`). */
export const PYTHON_ENV = 'OMNISTAGE_PYTHON';

/** Where a stage's Python engine lives and what runs it. */
export interface PythonEntry {
  /** Absolute path of the engine file. */
  file: string;
  /** The class to instantiate, or null for a module with `handle` (and optional `setup`) functions. */
  className: string | null;
  /** The interpreter: an absolute path, or a command looked up on PATH. */
  python: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const ENTRY_HINT =
  'set engine_args.entry to ./my_engine.py (functions setup/handle) or ./my_engine.py:MyEngine, relative to the pipeline file';

/** Reads `entry` and `python` from a stage's engine args (no file system access). */
export function pythonEntryOf(stage: StageConfig, pipelineFile: string, env: Env): PythonEntry {
  const entry = stage.engine_args['entry'];
  if (typeof entry !== 'string' || entry.trim() === '') {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `stage ${stage.stage_id} uses engine "python" but has no engine_args.entry`,
      {
        location:
          stage.locations.at('engine_args.entry') ?? stage.locations.at('engine_args') ?? stage.locations.at('engine'),
        context: { stage_id: stage.stage_id },
        hint: ENTRY_HINT,
      },
    );
  }
  const base = dirname(pipelineFile);
  const colon = entry.lastIndexOf(':');
  const named = colon > 0 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(entry.slice(colon + 1));
  const path = named ? entry.slice(0, colon) : entry;
  const configured = stage.engine_args['python'];
  const fromEnv = env[PYTHON_ENV];
  let python = 'python3';
  if (typeof configured === 'string' && configured !== '')
    python = configured.includes('/') ? resolve(base, configured) : configured;
  else if (fromEnv !== undefined && fromEnv !== '') python = fromEnv;
  return {
    file: isAbsolute(path) ? path : resolve(base, path),
    className: named ? entry.slice(colon + 1) : null,
    python,
  };
}

// Parses the engine file without running it: a syntax error, a missing class or a module without
// `handle` is found at plan time, by the interpreter that will run it.
const CHECK = `
import ast, json, sys
path, cls = sys.argv[1], sys.argv[2]
try:
    tree = ast.parse(open(path, "rb").read(), path)
except SyntaxError as e:
    print(json.dumps({"error": "syntax", "line": e.lineno, "message": e.msg})); sys.exit(0)
classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
funcs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
print(json.dumps({"classes": classes, "functions": funcs, "version": list(sys.version_info[:2])}))
`;

interface CheckResult {
  error?: 'syntax';
  line?: number;
  message?: string;
  classes?: string[];
  functions?: string[];
  version?: [number, number];
}

/**
 * Checks that the engine file exists and defines what `entry` names, with the interpreter that
 * will run it (which must exist and be Python ≥ 3.9). Throws located OMNI_CONFIG_INVALID errors.
 */
export function checkPythonEntry(stage: StageConfig, entry: PythonEntry, env: Env): void {
  const at = (key: string) => stage.locations.at(`engine_args.${key}`) ?? stage.locations.at('engine_args');
  const fail = (key: string, message: string, hint: string): never => {
    throw new OmniError('OMNI_CONFIG_INVALID', `stage ${stage.stage_id}: ${message}`, {
      location: at(key),
      context: { stage_id: stage.stage_id },
      hint,
    });
  };
  if (!existsSync(entry.file) || !statSync(entry.file).isFile())
    fail('entry', `engine file ${entry.file} does not exist`, ENTRY_HINT);
  const run = spawnSync(entry.python, ['-c', CHECK, entry.file, entry.className ?? ''], {
    encoding: 'utf8',
    env: { ...env },
    timeout: 30_000,
  });
  const fromYaml = typeof stage.engine_args['python'] === 'string';
  const pythonKey = fromYaml ? 'python' : 'entry';
  const source = fromYaml ? 'engine_args.python' : env[PYTHON_ENV] ? `$${PYTHON_ENV}` : 'the default';
  if (run.error !== undefined) {
    const missing = (run.error as NodeJS.ErrnoException).code === 'ENOENT';
    fail(
      pythonKey,
      missing
        ? `the Python interpreter "${entry.python}" (${source}) was not found`
        : `the Python interpreter "${entry.python}" (${source}) cannot run: ${run.error.message}`,
      `install Python 3.9 or later (Debian: apt-get install python3), or name an interpreter in engine_args.python or $${PYTHON_ENV}`,
    );
  }
  let result: CheckResult;
  try {
    result = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as CheckResult;
  } catch {
    return fail(
      pythonKey,
      `"${entry.python}" (${source}) did not run the engine-file check: ${(run.stderr || run.stdout).trim().slice(0, 300)}`,
      `name a Python 3.9+ interpreter in engine_args.python or $${PYTHON_ENV}`,
    );
  }
  const [major, minor] = result.version ?? [0, 0];
  if (result.error === undefined && (major < 3 || (major === 3 && minor < 9))) {
    fail(
      pythonKey,
      `"${entry.python}" (${source}) is Python ${major}.${minor}; the worker SDK needs 3.9 or later`,
      `name a newer interpreter in engine_args.python or $${PYTHON_ENV}`,
    );
  }
  if (result.error === 'syntax')
    fail(
      'entry',
      `${entry.file}:${result.line ?? '?'}: ${result.message ?? 'invalid syntax'}`,
      'fix the Python syntax error',
    );
  if (entry.className !== null && !(result.classes ?? []).includes(entry.className)) {
    const known = result.classes ?? [];
    fail(
      'entry',
      `engine file ${entry.file} has no class ${entry.className} (classes: ${known.join(', ') || 'none'})`,
      ENTRY_HINT,
    );
  }
  if (entry.className === null && !(result.functions ?? []).includes('handle')) {
    fail(
      'entry',
      `engine file ${entry.file} defines no handle(request, stream) function`,
      'define handle (and optionally setup and shutdown) at module level, or name a class: ./file.py:MyEngine',
    );
  }
}
